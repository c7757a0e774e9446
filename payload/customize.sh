#!/bin/sh
# mmdebstrap's customize hook for the payload (run by payload/build.py): outside the chroot, $1 is the new root,
# $2 a directory of wheels (this project and its Python dependencies, built on the build machine).
# /proc, /sys and /dev are mounted in the root while this runs.
set -eu
root="$1"
wheels="$2"
# Commands in the root run with a clean environment: nothing of the build machine's (PIP_*, locale) leaks in.
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 "$@"; }

# 1. This project, offline: a venv under /usr (read-only in an ostree deployment, like the rest of the OS) that
#    sees Debian's python3-gi, python3-blockdev and python3-bytesize, with the wheels built on the build machine.
in_root python3 -m venv --system-site-packages /usr/lib/phyllome/venv
mkdir -p "$root/tmp/wheels"
cp "$wheels"/*.whl "$root/tmp/wheels/"
in_root /usr/lib/phyllome/venv/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
    --find-links /tmp/wheels phyllome-installer
rm -rf "$root/tmp/wheels"
for tool in phyllome-install phyllome-firstboot; do
    ln -sf ../lib/phyllome/venv/bin/$tool "$root/usr/bin/$tool"
done

# 2. HOOK (project units): the first-boot and unlock units ship as package data in
#    phyllome_installer/data/systemd/ once the first-boot issue lands; every unit found there is installed into
#    /usr/lib/systemd/system and enabled. Nothing to do while the folder does not exist.
units=$(ls -d "$root"/usr/lib/phyllome/venv/lib/python3*/site-packages/phyllome_installer/data/systemd 2>/dev/null || true)
if [ -n "$units" ]; then
    for unit in "$units"/*.service "$units"/*.target "$units"/*.path; do
        [ -e "$unit" ] || continue
        cp "$unit" "$root/usr/lib/systemd/system/"
        in_root systemctl enable "$(basename "$unit")"
    done
fi

# 3. The initramfs: dracut was diverted while packages were installed (so the kernel's hook built none); now one
#    generic (not host-only) initramfs with ostree's module (98ostree, enabled by ostree-boot's dracut.conf.d),
#    written where ostree looks for it: /usr/lib/modules/<kver>/initramfs.img.
in_root dpkg-divert --local --rename --remove /usr/bin/dracut
kver=$(ls "$root/usr/lib/modules")
in_root dracut --force --quiet --no-hostonly --kver "$kver" --compress zstd \
    --add-drivers "virtio_blk virtio_pci virtio_scsi virtio_net f2fs ext4 vfat nls_cp437 nls_iso8859_1" \
    "/usr/lib/modules/$kver/initramfs.img"
