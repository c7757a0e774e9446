#!/bin/bash
# 91phyllome-live: what Debian 12's dmsquash-live (dracut 059) lacks for a root squashfs without an embedded
# rootfs.img (Fedora's current layout) booted with systemd in the initramfs: the OverlayFS upper and work
# directories. dmsquash-live-root asks systemd to mount /sysroot as an overlay on /run/overlayfs and /run/ovlwork
# but creates them only for a persistent overlay; later dracut releases create them. Added by name (live/).

# called by dracut
check() {
    return 255
}

# called by dracut
depends() {
    echo dmsquash-live
    return 0
}

# called by dracut
install() {
    inst_hook pre-mount 10 "$moddir/overlay-dirs.sh"
}
