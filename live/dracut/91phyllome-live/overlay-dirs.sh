#!/bin/sh
# Before sysroot.mount: the OverlayFS directories of a live root on tmpfs (see module-setup.sh).
case "$(getarg root=)" in
live:*)
    [ -e /run/overlayfs ] || mkdir -m 0755 -p /run/overlayfs
    [ -e /run/ovlwork ] || mkdir -m 0755 -p /run/ovlwork
    ;;
esac
