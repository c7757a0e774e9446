#!/bin/bash
# 90phyllome: finds the Phyllome OS answer file at boot and leaves it at /run/phyllome/answers.toml.
# Kernel arguments and behaviour: dracut/README.md and docs/live-image.md.

# called by dracut
check() {
    require_binaries curl sha256sum blkid mount umount || return 1
    # Only when asked for by name (a live image's dracut.conf.d or `dracut --add phyllome`).
    return 255
}

# called by dracut
depends() {
    # url-lib brings fetch_url and curl, and with it the network module (ip=, rd.neednet=).
    echo url-lib
    return 0
}

# called by dracut
installkernel() {
    # Filesystems an answer file may sit on: a USB key (vfat), an ext4 partition, the ISO itself.
    hostonly='' instmods vfat ext4 isofs nls_cp437 nls_iso8859_1 nls_ascii nls_utf8
}

# called by dracut
install() {
    inst_simple "$moddir/phyllome-args.sh" /lib/phyllome-args.sh
    inst_simple "$moddir/phyllome-lib.sh" /lib/phyllome-lib.sh
    inst_hook cmdline 30 "$moddir/phyllome-parse.sh"
    inst_hook initqueue/online 90 "$moddir/phyllome-online.sh"
    inst_hook pre-pivot 50 "$moddir/phyllome-fetch.sh"
    inst_multiple sha256sum blkid mount umount wc cut tr mkdir rmdir rm cp mv chmod cat grep tail sed readlink
}
