#!/bin/sh
# phyllome-lib.sh: where the Phyllome OS answer file comes from at boot (the 90phyllome dracut module).
#
#   phyllome.answers=file:/path | file:///path | /path     in the initramfs, else in the live root
#   phyllome.answers=hd:LABEL=NAME:/path | hd:UUID=U:/path  that filesystem, mounted read-only, unmounted after
#   phyllome.answers=http://... | https://...             fetched with dracut's fetch_url (url-lib, curl)
#   phyllome.answers.sha256=HEX                            the file's SHA-256; anything else is refused
#   phyllome.answers.insecure=1                            allow plain http:// without a sha256 pin
#   (no phyllome.answers=)                                 a filesystem labelled PHYLLOME-ANS with /answers.toml
#
# The file lands at /run/phyllome/answers.toml (mode 0600); /run survives the switch to the live root. What
# happened is one line in /run/phyllome/boot-status ("found SOURCE", "failed MESSAGE" or "none MESSAGE"), which
# the installer reads. Every failure is one line on the console, and the boot goes on to the interactive installer.
# Hooks source this file: no `exit` here, only `return`.

type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh

PHYLLOME_DIR=${PHYLLOME_DIR:-/run/phyllome}
PHYLLOME_DEST=$PHYLLOME_DIR/answers.toml
PHYLLOME_STATUS=$PHYLLOME_DIR/boot-status
PHYLLOME_LABEL=PHYLLOME-ANS
PHYLLOME_MAX_BYTES=1048576
PHYLLOME_TIMEOUT=${PHYLLOME_TIMEOUT:-30}
PHYLLOME_DEV_WAIT=${PHYLLOME_DEV_WAIT:-20}

# phyllome_parse: sets PHYLLOME_SPEC, PHYLLOME_KIND (default|file|hd|url|error), PHYLLOME_WHERE (LABEL=/UUID=),
# PHYLLOME_PATH, PHYLLOME_URL, PHYLLOME_SHA256, PHYLLOME_INSECURE (0|1) and PHYLLOME_ERROR.
phyllome_parse() {
    local rest
    PHYLLOME_SPEC=$(getarg phyllome.answers=)
    PHYLLOME_SHA256=$(getarg phyllome.answers.sha256=)
    PHYLLOME_SHA256=$(printf '%s' "$PHYLLOME_SHA256" | tr 'A-F' 'a-f')
    if getargbool 0 phyllome.answers.insecure; then PHYLLOME_INSECURE=1; else PHYLLOME_INSECURE=0; fi
    PHYLLOME_KIND=
    PHYLLOME_WHERE=
    PHYLLOME_PATH=
    PHYLLOME_URL=
    PHYLLOME_ERROR=
    case "$PHYLLOME_SPEC" in
        "")
            PHYLLOME_KIND=default
            PHYLLOME_WHERE="LABEL=$PHYLLOME_LABEL"
            PHYLLOME_PATH=/answers.toml
            ;;
        http://* | https://*)
            PHYLLOME_KIND=url
            PHYLLOME_URL=$PHYLLOME_SPEC
            ;;
        file:///*)
            PHYLLOME_KIND=file
            PHYLLOME_PATH=${PHYLLOME_SPEC#file://}
            ;;
        file:/*)
            PHYLLOME_KIND=file
            PHYLLOME_PATH=${PHYLLOME_SPEC#file:}
            ;;
        /*)
            PHYLLOME_KIND=file
            PHYLLOME_PATH=$PHYLLOME_SPEC
            ;;
        hd:*)
            rest=${PHYLLOME_SPEC#hd:}
            PHYLLOME_WHERE=${rest%%:/*}
            PHYLLOME_PATH=${rest#"$PHYLLOME_WHERE":}
            case "$PHYLLOME_WHERE" in
                LABEL=?* | UUID=?*) PHYLLOME_KIND=hd ;;
                *) PHYLLOME_KIND=error ;;
            esac
            case "$PHYLLOME_PATH" in
                /?*) ;;
                *) PHYLLOME_KIND=error ;;
            esac
            [ "$PHYLLOME_KIND" = error ] \
                && PHYLLOME_ERROR="phyllome.answers=$PHYLLOME_SPEC: expected hd:LABEL=NAME:/path or hd:UUID=UUID:/path"
            ;;
        *)
            PHYLLOME_KIND=error
            PHYLLOME_ERROR="phyllome.answers=$PHYLLOME_SPEC: unsupported form (use file:/path, hd:LABEL=NAME:/path, hd:UUID=UUID:/path, http:// or https://)"
            ;;
    esac
    if [ "$PHYLLOME_KIND" != error ] && [ -n "$PHYLLOME_SHA256" ]; then
        case "$PHYLLOME_SHA256" in
            *[!0-9a-f]*) PHYLLOME_KIND=error ;;
            *) [ ${#PHYLLOME_SHA256} -eq 64 ] || PHYLLOME_KIND=error ;;
        esac
        [ "$PHYLLOME_KIND" = error ] \
            && PHYLLOME_ERROR="phyllome.answers.sha256=$PHYLLOME_SHA256: expected 64 hexadecimal digits"
    fi
    if [ "$PHYLLOME_KIND" = url ] && [ -z "$PHYLLOME_SHA256" ] && [ "$PHYLLOME_INSECURE" != 1 ]; then
        case "$PHYLLOME_URL" in
            http://*)
                PHYLLOME_KIND=error
                PHYLLOME_ERROR="phyllome.answers=$PHYLLOME_URL: refused: plain http:// needs phyllome.answers.sha256= (or phyllome.answers.insecure=1)"
                ;;
        esac
    fi
    return 0
}

# The outcome, once: one line on the console for a failure, one line in the status file for the installer.
phyllome_fail() {
    mkdir -p -m 0700 "$PHYLLOME_DIR"
    rm -f -- "$PHYLLOME_DEST"
    echo "failed $*" > "$PHYLLOME_STATUS"
    warn "phyllome: $*; going on to the interactive installer"
    return 1
}

phyllome_none() {
    mkdir -p -m 0700 "$PHYLLOME_DIR"
    echo "none $*" > "$PHYLLOME_STATUS"
    info "phyllome: $*"
}

phyllome_done() {
    [ -e "$PHYLLOME_STATUS" ]
}

# phyllome_accept FILE SOURCE: check the size and the pin, then install FILE as the answer file.
phyllome_accept() {
    local file="$1" source="$2" size sum
    if ! size=$(wc -c < "$file"); then
        phyllome_fail "$source: cannot read the answer file"
        return 1
    fi
    size=$((size + 0))
    if [ "$size" -gt "$PHYLLOME_MAX_BYTES" ]; then
        phyllome_fail "$source: larger than $PHYLLOME_MAX_BYTES bytes, not an answer file"
        return 1
    fi
    if [ -n "$PHYLLOME_SHA256" ]; then
        sum=$(sha256sum < "$file")
        sum=${sum%% *}
        if [ "$sum" != "$PHYLLOME_SHA256" ]; then
            phyllome_fail "$source: refused: its sha256 is $sum, phyllome.answers.sha256= pins $PHYLLOME_SHA256"
            return 1
        fi
    fi
    mkdir -p -m 0700 "$PHYLLOME_DIR"
    (
        umask 077
        cp -- "$file" "$PHYLLOME_DEST.tmp" && chmod 0600 "$PHYLLOME_DEST.tmp"
    ) || {
        phyllome_fail "$source: cannot write $PHYLLOME_DEST"
        return 1
    }
    mv -f -- "$PHYLLOME_DEST.tmp" "$PHYLLOME_DEST"
    echo "found $source" > "$PHYLLOME_STATUS"
    info "phyllome: answer file from $source saved to $PHYLLOME_DEST"
    return 0
}

# Who is asking: the DMI product serial and every MAC address, as headers (Anaconda's inst.ks.sendsn/sendmac).
phyllome_identity_headers() {
    local serial n=0 dev mac
    [ -e /run/initramfs/url-lib/.phyllome-headers ] && return 0
    # Firmware text goes into curl's config file: keep only characters that cannot end or escape its quotes.
    serial=$(tr -cd 'A-Za-z0-9._:/ -' < /sys/class/dmi/id/product_serial 2> /dev/null)
    [ -n "$serial" ] && set_http_header "X-Phyllome-Serial" "$serial"
    for dev in /sys/class/net/*; do
        [ -e "$dev/address" ] || continue
        [ "${dev##*/}" = lo ] && continue
        read -r mac < "$dev/address" || continue
        set_http_header "X-Phyllome-MAC-$n" "${dev##*/} $mac"
        n=$((n + 1))
    done
    : > /run/initramfs/url-lib/.phyllome-headers
}

phyllome_fetch_url() {
    local url="$PHYLLOME_URL" tmp="/tmp/phyllome-answers.download" err rc
    type fetch_url > /dev/null 2>&1 || . /lib/url-lib.sh
    phyllome_identity_headers
    rm -f -- "$tmp"
    # Bounded: PHYLLOME_TIMEOUT seconds in all (each attempt two thirds of it, no new attempt after one third:
    # url-lib retries), a size cap, http(s) only, also on redirects; an https:// URL without a pin may not be
    # redirected to plain http://.
    local redir="=http,https"
    case "$url" in https://*) [ -z "$PHYLLOME_SHA256" ] && [ "$PHYLLOME_INSECURE" != 1 ] && redir="=https" ;; esac
    local attempt=$((PHYLLOME_TIMEOUT * 2 / 3)) window=$((PHYLLOME_TIMEOUT / 3))
    local curl_args="$curl_args --max-time $attempt --retry-max-time $window"
    curl_args="$curl_args --max-filesize $PHYLLOME_MAX_BYTES --proto =http,https --proto-redir $redir"
    # fetch_url echoes the URL to its stdin (the console): keep that quiet, keep curl's one error line.
    err=$(fetch_url "$url" "$tmp" 2>&1 < /dev/null)
    rc=$?
    if [ $rc -ne 0 ] || ! [ -f "$tmp" ]; then
        err=$(printf '%s\n' "$err" | grep '^curl: ' | tail -n 1)
        err=${err#curl: }
        case "$err" in
            "("[0-9]*") "*) err=${err#*) } ;; # curl's exit code in parentheses: the words say it
        esac
        [ -n "$err" ] || err="fetch_url failed with status $rc"
        phyllome_fail "phyllome.answers=$url: cannot fetch: $err"
        return 1
    fi
    phyllome_accept "$tmp" "phyllome.answers=$url"
    rc=$?
    rm -f -- "$tmp"
    return $rc
}

# phyllome_device WHERE: the block device for LABEL=... or UUID=..., or nothing.
phyllome_device() {
    local dev
    dev=$(label_uuid_to_dev "$1")
    if [ -b "$dev" ]; then
        readlink -f "$dev"
        return 0
    fi
    blkid -l -o device -t "$1" 2> /dev/null
}

# phyllome_read_device WHERE PATH SOURCE
phyllome_read_device() {
    local where="$1" path="$2" source="$3" dev mnt=/run/phyllome-mnt rc
    dev=$(phyllome_device "$where")
    if [ -z "$dev" ]; then
        if [ "$PHYLLOME_KIND" = default ]; then
            phyllome_none "no phyllome.answers= kernel argument and no $PHYLLOME_LABEL partition: interactive install"
            return 0
        fi
        phyllome_fail "$source: no filesystem with $where was found"
        return 1
    fi
    mkdir -p "$mnt"
    if ! mount -o ro,nosuid,nodev,noexec "$dev" "$mnt" 2> /dev/null; then
        rmdir "$mnt" 2> /dev/null
        phyllome_fail "$source: cannot mount $dev read-only"
        return 1
    fi
    if [ -f "$mnt$path" ]; then
        phyllome_accept "$mnt$path" "$source ($dev)"
        rc=$?
    else
        phyllome_fail "$source: $dev holds no $path"
        rc=1
    fi
    umount "$mnt" || umount -l "$mnt"
    rmdir "$mnt" 2> /dev/null
    return $rc
}

phyllome_fetch_local() {
    local source="phyllome.answers=$PHYLLOME_SPEC"
    case "$PHYLLOME_KIND" in
        default)
            phyllome_read_device "$PHYLLOME_WHERE" "$PHYLLOME_PATH" "partition labelled $PHYLLOME_LABEL"
            ;;
        hd)
            phyllome_read_device "$PHYLLOME_WHERE" "$PHYLLOME_PATH" "$source"
            ;;
        file)
            if [ -f "$PHYLLOME_PATH" ]; then
                phyllome_accept "$PHYLLOME_PATH" "$source (initramfs)"
            elif [ -n "$NEWROOT" ] && [ -f "$NEWROOT$PHYLLOME_PATH" ]; then
                phyllome_accept "$NEWROOT$PHYLLOME_PATH" "$source (live root)"
            else
                phyllome_fail "$source: no such file in the initramfs or the live root"
            fi
            ;;
        url)
            phyllome_fail "$source: no network interface came up, nothing was fetched"
            ;;
        error)
            phyllome_fail "$PHYLLOME_ERROR"
            ;;
    esac
}

# Called from the cmdline hook: report a malformed argument once, ask for the network, wait for a named device.
phyllome_prepare() {
    local dev deadline
    case "$PHYLLOME_KIND" in
        error)
            phyllome_fail "$PHYLLOME_ERROR"
            ;;
        url)
            getargbool 0 rd.neednet || echo "rd.neednet=1" > /etc/cmdline.d/90phyllome-neednet.conf
            ;;
        hd)
            # Wait for the device in the initqueue, but never longer than PHYLLOME_DEV_WAIT seconds:
            # a missing key is one line on the console, not a boot that hangs.
            dev=$(label_uuid_to_dev "$PHYLLOME_WHERE")
            read -r deadline _ < /proc/uptime
            deadline=$((${deadline%%.*} + PHYLLOME_DEV_WAIT))
            printf '[ -e "%s" ] || [ "$(cut -d. -f1 /proc/uptime)" -ge %s ]\n' "$dev" "$deadline" \
                > "$hookdir/initqueue/finished/phyllome-device.sh"
            ;;
    esac
    return 0
}
