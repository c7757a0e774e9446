#!/bin/sh
# mmdebstrap's customize hook for the payload's base (run by payload/build.py): outside the chroot, $1 is the new
# root, $2 a directory of wheels (the project's Python dependencies, built on the build machine) with their
# requirements.txt. /proc, /sys and /dev are mounted in the root while this runs.
set -eu
root="$1"
wheels="$2"
# Commands in the root run with a clean environment: nothing of the build machine's (PIP_*, locale) leaks in.
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 "$@"; }

# 1. The project's Python dependencies, offline: a venv under /usr (read-only in an ostree deployment, like the
#    rest of the OS) that also sees Debian's python3-gi, python3-blockdev and python3-bytesize. The project itself
#    is added by build.py as a second layer, so a change of its source does not rebuild this root.
in_root python3 -m venv --system-site-packages /usr/lib/phyllome/venv
mkdir -p "$root/tmp/wheels"
cp "$wheels"/*.whl "$wheels"/requirements.txt "$root/tmp/wheels/"
in_root /usr/lib/phyllome/venv/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
    --find-links /tmp/wheels -r /tmp/wheels/requirements.txt
rm -rf "$root/tmp/wheels"
# Hash-checked bytecode: every file of a deployment has mtime 0, so timestamp-checked .pyc would never be used.
in_root /usr/lib/phyllome/venv/bin/python3 -m compileall -q -j0 --invalidation-mode unchecked-hash \
    /usr/lib/phyllome/venv/lib >/dev/null

# 2. The initramfs: dracut was diverted while packages were installed (so the kernel's hook built none); now one
#    generic (not host-only) initramfs with ostree's module (98ostree, enabled by ostree-boot's dracut.conf.d),
#    written where ostree looks for it: /usr/lib/modules/<kver>/initramfs.img.
in_root dpkg-divert --local --rename --remove /usr/bin/dracut
kver=$(ls "$root/usr/lib/modules")
in_root dracut --force --quiet --no-hostonly --kver "$kver" --compress zstd \
    --add-drivers "virtio_blk virtio_pci virtio_scsi virtio_net f2fs ext4 vfat nls_cp437 nls_iso8859_1" \
    "/usr/lib/modules/$kver/initramfs.img"

# 3. What Fedora's host has and Debian lacks: the wheel group that gives an admin sudo (the installer's default
#    groups are wheel and libvirt, as Anaconda's are).
in_root groupadd --system wheel
printf '%s\n' '# Members of wheel may run any command (as on Fedora).' '%wheel ALL=(ALL:ALL) ALL' \
    > "$root/etc/sudoers.d/wheel"
chmod 0440 "$root/etc/sudoers.d/wheel"

# 4. GRUB's settings for grub-mkconfig, which ostree runs at every deployment change (sysroot.bootloader grub2,
#    set by the installer) and whose /etc/grub.d/15_ostree writes one entry per deployment. Debian's grub-efi
#    package would create this file; the payload ships only GRUB's binaries and grub2-common.
cat > "$root/etc/default/grub" <<'GRUB'
# Read by grub-mkconfig when ostree writes the boot menu (/boot/loader/grub.cfg) after a deployment change.
GRUB_DEFAULT=0
GRUB_TIMEOUT=3
GRUB_DISTRIBUTOR="Phyllome OS"
GRUB_CMDLINE_LINUX=""
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_TERMINAL=console
GRUB_DISABLE_OS_PROBER=true
GRUB_DISABLE_RECOVERY=true
GRUB

# 5. Wired networking by DHCP (systemd-networkd, part of Debian's systemd), so that the host reaches the server
#    its upgrades come from ([payload] upgrade_url); Fedora's host has NetworkManager for this.
mkdir -p "$root/etc/systemd/network"
printf '%s\n' '[Match]' 'Type=ether' '' '[Network]' 'DHCP=yes' > "$root/etc/systemd/network/80-phyllome-wired.network"
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1
