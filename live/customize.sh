#!/bin/sh
# mmdebstrap's customize hook for the live medium's root (run by live/root.py): outside the chroot, $1 is the new
# root, $2 a directory of wheels (the project's Python dependencies, built on the build machine) with their
# requirements.txt, $3 this checkout's dracut module (dracut/90phyllome), $4 live/dracut/91phyllome-live.
# /proc, /sys and /dev are mounted in the root while this runs. The project itself is not installed here: live/build.py adds it as a light layer.
set -eu
root="$1"
wheels="$2"
module="$3"
live_module="$4"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 "$@"; }

# 1. The installer's private venv (never the system's site-packages: the project's top-level packages storage,
#    screens and firstboot are generic names), seeing Debian's gi, blockdev and bytesize bindings.
in_root python3 -m venv --system-site-packages /usr/lib/phyllome/venv
mkdir -p "$root/tmp/wheels"
cp "$wheels"/*.whl "$wheels"/requirements.txt "$root/tmp/wheels/"
in_root /usr/lib/phyllome/venv/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
    --find-links /tmp/wheels -r /tmp/wheels/requirements.txt
rm -rf "$root/tmp/wheels"
in_root /usr/lib/phyllome/venv/bin/python3 -m compileall -q -j0 /usr/lib/phyllome/venv/lib >/dev/null

# 2. The live initramfs, as Fedora's: dmsquash-live (root=live:CDLABEL=..., rd.live.check with checkisomd5) and
#    90phyllome (the answer file at boot), 91phyllome-live (live/dracut), generic (not host-only), systemd
#    inside, zstd; livenet (root=live:http://.../squashfs.img, network boot) with network-legacy (dhclient): dracut
#    059's systemd-networkd runs no initqueue/online hooks, which livenet and 90phyllome's URL fetch need.
rm -rf "$root/usr/lib/dracut/modules.d/90phyllome"
cp -r "$module" "$root/usr/lib/dracut/modules.d/90phyllome"
rm -rf "$root/usr/lib/dracut/modules.d/91phyllome-live"
cp -r "$live_module" "$root/usr/lib/dracut/modules.d/91phyllome-live"
in_root dpkg-divert --local --rename --remove /usr/bin/dracut
kver=$(ls "$root/usr/lib/modules")
in_root dracut --force --quiet --no-hostonly --no-hostonly-cmdline --kver "$kver" --compress zstd \
    --add "dmsquash-live livenet network-legacy phyllome phyllome-live" --omit "plymouth systemd-networkd" \
    --add-drivers "virtio_blk virtio_pci virtio_scsi virtio_net sr_mod cdrom isofs usb-storage uas xhci_pci ehci_pci ahci sd_mod squashfs loop overlay vfat ext4 nls_cp437 nls_iso8859_1" \
    "/boot/initrd.img-$kver"
test -s "$root/boot/initrd.img-$kver"
