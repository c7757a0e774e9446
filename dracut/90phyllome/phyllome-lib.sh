#!/bin/sh
# phyllome-lib.sh: where the Phyllome OS answer file comes from at boot (the 90phyllome dracut module).
#
#   phyllome.answers=file:/path | file:///path | /path     in the initramfs, else in the live root
#   phyllome.answers=hd:LABEL=NAME:/path | hd:UUID=U:/path  that filesystem, mounted read-only, unmounted after
#   phyllome.answers=http://... | https://...             fetched with curl (url-lib's arguments and headers)
#   phyllome.answers.sha256=HEX                            the file's SHA-256; anything else is refused
#   phyllome.answers.insecure=1                            allow plain http:// without a sha256 pin
#   (no phyllome.answers=, or an empty one)                a filesystem labelled PHYLLOME-ANS with /answers.toml
#
# The arguments' grammar is phyllome-args.sh (/lib/phyllome-args.sh), sourced here.
#
# The file lands at /run/phyllome/answers.toml (mode 0600); /run survives the switch to the live root. What
# happened is one line in /run/phyllome/boot-status ("found SOURCE", "failed MESSAGE" or "none MESSAGE"), which
# the installer reads. Every failure is one line on the console, and the boot goes on to the interactive installer.
# Hooks source this file: no `exit` here, only `return`.
#
# Nothing from the kernel command line is ever written into shell code (hooks are constant text; names travel as
# data in files), passed on a command line with credentials (curl reads the URL from its stdin), or shown with a
# password, a query string, a control character or a backslash in it.

type getcmdline > /dev/null 2>&1 || . /lib/dracut-lib.sh

# Fixed here, never taken from the environment: the kernel hands unknown NAME=VALUE arguments to init as
# environment variables, so a value read from one would come from the command line.
PHYLLOME_DIR=/run/phyllome
PHYLLOME_LABEL=PHYLLOME-ANS
PHYLLOME_MAX_BYTES=1048576
PHYLLOME_TIMEOUT=30
PHYLLOME_DEV_WAIT=20
PHYLLOME_MNT=/run/phyllome-mnt
PHYLLOME_SYS=/sys
PHYLLOME_PROC=/proc

type phyllome_parse > /dev/null 2>&1 || . /lib/phyllome-args.sh

# The outcome, once: one line on the console for a failure, one line in the status file for the installer.
# Every message is built from phyllome_clean'ed or fixed parts only (no backslash reaches dracut's echo).
phyllome_status() {
    mkdir -p -m 0700 "$PHYLLOME_DIR"
    printf '%s\n' "$*" > "$PHYLLOME_DIR/boot-status"
}

phyllome_fail() {
    rm -f -- "$PHYLLOME_DIR/answers.toml"
    phyllome_status "failed $*"
    warn "phyllome: $*; going on to the interactive installer"
    return 1
}

phyllome_none() {
    phyllome_status "none $*"
    info "phyllome: $*"
}

phyllome_done() {
    [ -e "$PHYLLOME_DIR/boot-status" ]
}

# phyllome_accept FILE SOURCE: check the size and the pin, then install FILE (a regular file) as the answer file.
phyllome_accept() {
    local file="$1" source="$2" size sum dest="$PHYLLOME_DIR/answers.toml"
    if ! [ -f "$file" ] || ! size=$(wc -c < "$file"); then
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
        cp -- "$file" "$dest.tmp" && chmod 0600 "$dest.tmp"
    ) || {
        phyllome_fail "$source: cannot write $dest"
        return 1
    }
    mv -f -- "$dest.tmp" "$dest"
    phyllome_status "found $source"
    info "phyllome: answer file from $source saved to $dest"
    return 0
}

# phyllome_inside ROOT PATH: prints ROOT/PATH resolved when it is a regular file inside ROOT ("" for the
# initramfs itself); returns 3 when a link leads outside ROOT, 2 when there is no such regular file.
phyllome_inside() {
    local root="$1" real
    real=$(readlink -f -- "$root$2") || return 2
    case "$real" in
        "$root"/*) ;;
        *) return 3 ;;
    esac
    [ -f "$real" ] || return 2
    printf '%s\n' "$real"
}

# Who is asking: the DMI product serial and every MAC address, as headers (Anaconda's inst.ks.sendsn/sendmac).
phyllome_identity_headers() {
    local serial n=0 dev name mac
    [ -e /run/initramfs/url-lib/.phyllome-headers ] && return 0
    # Firmware and interface names go into curl's config file: keep only characters that cannot end its quotes.
    serial=$(tr -cd 'A-Za-z0-9._:/ -' < /sys/class/dmi/id/product_serial 2> /dev/null)
    [ -n "$serial" ] && set_http_header "X-Phyllome-Serial" "$serial"
    for dev in /sys/class/net/*; do
        [ -e "$dev/address" ] || continue
        name=$(printf '%s' "${dev##*/}" | tr -cd 'A-Za-z0-9._-')
        [ "$name" = lo ] && continue
        read -r mac < "$dev/address" || continue
        mac=$(printf '%s' "$mac" | tr -cd '0-9a-fA-F:')
        set_http_header "X-Phyllome-MAC-$n" "$name $mac"
        n=$((n + 1))
    done
    : > /run/initramfs/url-lib/.phyllome-headers
}

# phyllome_keep NAME VALUE: VALUE with only the characters the identity query carries for NAME (fleet.py keep).
phyllome_keep() {
    case "$1" in
        uuid | mac) printf '%s' "$2" | tr 'A-Z:' 'a-z-' | tr -cd '0-9a-f-' | cut -c1-64 ;;
        serial) printf '%s' "$2" | tr -cd 'A-Za-z0-9._~-' | cut -c1-64 ;;
        hostname) printf '%s' "$2" | tr -cd 'A-Za-z0-9.-' | cut -c1-64 ;;
    esac
}

# phyllome_read FILE: its first line, or nothing.
phyllome_read() {
    local line=
    [ -r "$1" ] && read -r line < "$1"
    printf '%s' "$line"
}

# phyllome_identity_query: uuid=...&mac=...&serial=...&hostname=... (empty ones left out): the DMI product UUID and
# serial, the MAC of the first interface that is up (by name; else the first), the kernel's hostname.
phyllome_identity_query() {
    local dmi="$PHYLLOME_SYS/class/dmi/id" dev mac first= up= uuid serial host query=
    for dev in "$PHYLLOME_SYS"/class/net/*; do
        [ "${dev##*/}" = lo ] && continue
        mac=$(phyllome_read "$dev/address")
        [ -n "$mac" ] || continue
        [ -n "$first" ] || first=$mac
        [ -z "$up" ] && [ "$(phyllome_read "$dev/operstate")" = up ] && up=$mac
    done
    uuid=$(phyllome_keep uuid "$(phyllome_read "$dmi/product_uuid")")
    mac=$(phyllome_keep mac "${up:-$first}")
    serial=$(phyllome_keep serial "$(phyllome_read "$dmi/product_serial")")
    host=$(phyllome_read "$PHYLLOME_PROC/sys/kernel/hostname")
    case "$host" in "(none)" | localhost) host= ;; esac
    host=$(phyllome_keep hostname "$host")
    [ -n "$uuid" ] && query="uuid=$uuid"
    [ -n "$mac" ] && query="${query:+$query&}mac=$mac"
    [ -n "$serial" ] && query="${query:+$query&}serial=$serial"
    [ -n "$host" ] && query="${query:+$query&}hostname=$host"
    printf '%s' "$query"
}

# phyllome_answer_url URL QUERY: URL with QUERY added ('?' or '&' as the URL needs, before a #fragment).
phyllome_answer_url() {
    local url="$1" query="$2" base frag=
    if [ -z "$query" ]; then
        printf '%s' "$url"
        return 0
    fi
    base=${url%%#*}
    [ "$base" != "$url" ] && frag="#${url#*#}"
    case "$base" in
        *[?\&]) ;;
        *\?*) base="$base&" ;;
        *) base="$base?" ;;
    esac
    printf '%s' "$base$query$frag"
}

# phyllome_facts: the machine's facts as JSON (fleet.py facts: the same keys), every value kept to characters
# that need no escaping.
phyllome_facts() {
    local dmi="$PHYLLOME_SYS/class/dmi/id" name sep= dev mac up size flags vmx=false svm=false vm=false
    printf '{"identity": {'
    printf '%s\n' "$(phyllome_identity_query)" | tr '&' '\n' | while IFS== read -r name value; do
        [ -n "$name" ] || continue
        printf '%s"%s": "%s"' "$sep" "$name" "$value"
        sep=", "
    done
    printf '}, "dmi": {'
    for name in sys_vendor product_name product_serial product_uuid board_vendor board_name bios_vendor \
        bios_version chassis_type; do
        printf '%s"%s": "%s"' "$sep" "$name" "$(phyllome_read "$dmi/$name" | tr -cd 'A-Za-z0-9._:/ ()+,-')"
        sep=", "
    done
    printf '}, "network_interfaces": ['
    sep=
    for dev in "$PHYLLOME_SYS"/class/net/*; do
        [ "${dev##*/}" = lo ] && continue
        mac=$(phyllome_keep mac "$(phyllome_read "$dev/address")")
        [ -n "$mac" ] || continue
        up=false
        [ "$(phyllome_read "$dev/operstate")" = up ] && up=true
        printf '%s{"link": "%s", "mac": "%s", "up": %s}' "$sep" "$(printf '%s' "${dev##*/}" | tr -cd 'A-Za-z0-9._-')" "$mac" "$up"
        sep=", "
    done
    printf '], "disks": ['
    sep=
    for dev in "$PHYLLOME_SYS"/block/*; do
        case "${dev##*/}" in loop* | ram* | zram* | dm-* | sr* | '*') continue ;; esac
        size=$(phyllome_read "$dev/size" | tr -cd '0-9')
        printf '%s{"name": "%s", "size": %s, "model": "%s", "serial": "%s"}' "$sep" \
            "$(printf '%s' "${dev##*/}" | tr -cd 'A-Za-z0-9._-')" "$((${size:-0} * 512))" \
            "$(phyllome_read "$dev/device/model" | tr -cd 'A-Za-z0-9._:/ ()+,-')" \
            "$(phyllome_read "$dev/device/serial" | tr -cd 'A-Za-z0-9._:/ ()+,-')"
        sep=", "
    done
    flags=$(grep -m1 '^flags' "$PHYLLOME_PROC/cpuinfo" 2> /dev/null)
    case " $flags " in *" vmx "*) vmx=true ;; esac
    case " $flags " in *" svm "*) svm=true ;; esac
    case " $flags " in *" hypervisor "*) vm=true ;; esac
    printf '], "virtualization": {"vmx": %s, "svm": %s, "in_a_vm": %s}}\n' "$vmx" "$svm" "$vm"
}

# phyllome_curl FACTS ARGS...: the download, the URL and the facts (when FACTS is a file) from a config on stdin.
phyllome_curl() {
    local facts="$1"
    shift
    if [ -n "$facts" ]; then
        printf 'url = "%s"\noutput = "%s"\ndata-binary = "@%s"\nheader = "Content-Type: application/json"\n' \
            "$PHYLLOME_FETCH_URL" "$PHYLLOME_FETCH_OUT" "$facts" | curl "$@" --config -
    else
        printf 'url = "%s"\noutput = "%s"\n' "$PHYLLOME_FETCH_URL" "$PHYLLOME_FETCH_OUT" | curl "$@" --config -
    fi
}

phyllome_fetch_url() {
    local url="$PHYLLOME_URL" tmp="/tmp/phyllome-answers.download" err rc auth userinfo redir attempt window
    local source="phyllome.answers=$PHYLLOME_SHOWN" facts= pin=
    type set_http_header > /dev/null 2>&1 || . /lib/url-lib.sh
    phyllome_identity_headers
    rm -f -- "$tmp"
    # The machine's identity in the query (matchbox's /generic?uuid=...&mac=...), facts when asked for them.
    PHYLLOME_FETCH_URL=$(phyllome_answer_url "$url" "$(phyllome_identity_query)")
    PHYLLOME_FETCH_OUT=$tmp
    if [ "$PHYLLOME_FACTS" = 1 ]; then
        facts=/tmp/phyllome-facts.json
        phyllome_facts > "$facts"
    fi
    # A public key pin names the server's key itself: it replaces the CA check (curl checks the pin with -k too).
    [ -n "$PHYLLOME_PUBKEY" ] && pin="--insecure --pinnedpubkey $PHYLLOME_PUBKEY"
    # Bounded: PHYLLOME_TIMEOUT seconds in all (each attempt two thirds of it, no new attempt after one third:
    # url-lib's arguments retry), a size cap, http(s) only, also on redirects; an https:// URL without a pin may
    # not be redirected to plain http://.
    redir="=http,https"
    case "$url" in https://*) [ -z "$PHYLLOME_SHA256" ] && [ "$PHYLLOME_INSECURE" != 1 ] && redir="=https" ;; esac
    attempt=$((PHYLLOME_TIMEOUT * 2 / 3))
    window=$((PHYLLOME_TIMEOUT / 3))
    # The URL, credentials and all, reaches curl in a config read from its stdin, never on its command line
    # (the grammar keeps quotes and backslashes out of it). $curl_args is url-lib's (retries, --fail, proxy).
    # shellcheck disable=SC2086
    # shellcheck disable=SC2086
    err=$(phyllome_curl "$facts" $curl_args --fail --silent --show-error $pin --max-time "$attempt" --retry-max-time "$window" \
        --max-filesize "$PHYLLOME_MAX_BYTES" --proto =http,https --proto-redir "$redir" 2>&1 > /dev/null)
    rc=$?
    case "$err" in
        *"error: 428"*) # the server asks for the machine's facts: once more, as a POST of them
            if [ -z "$facts" ]; then
                facts=/tmp/phyllome-facts.json
                phyllome_facts > "$facts"
                # shellcheck disable=SC2086
                err=$(phyllome_curl "$facts" $curl_args --fail --silent --show-error $pin --max-time "$attempt" --retry-max-time "$window" \
                    --max-filesize "$PHYLLOME_MAX_BYTES" --proto =http,https --proto-redir "$redir" 2>&1 > /dev/null)
                rc=$?
            fi
            ;;
    esac
    [ -n "$facts" ] && rm -f -- "$facts"
    if [ $rc -ne 0 ] || ! [ -f "$tmp" ]; then
        err=$(printf '%s\n' "$err" | grep '^curl: ' | tail -n 1)
        err=${err#curl: }
        case "$err" in
            "("[0-9]*") "*) err=${err#*) } ;; # curl's exit code in parentheses: the words say it
        esac
        auth=${url#*://}
        auth=${auth%%[/?#]*}
        case "$auth" in
            *@*)
                userinfo=${auth%@*}
                case "$err" in *"$userinfo"* | *"${userinfo#*:}"*) err="curl's message quotes the credentials" ;; esac
                ;;
        esac
        [ -n "$err" ] || err="curl failed with status $rc"
        phyllome_fail "$source: cannot fetch: $(phyllome_clean "$err")"
        return 1
    fi
    phyllome_accept "$tmp" "$source"
    rc=$?
    rm -f -- "$tmp"
    return $rc
}

# phyllome_dev_path WHERE: the udev link for LABEL=... or UUID=... (printf and sed: no echo of a label).
phyllome_dev_path() {
    case "$1" in
        LABEL=*) printf '/dev/disk/by-label/%s\n' "$(printf '%s' "${1#LABEL=}" | sed 's,/,\\x2f,g;s, ,\\x20,g')" ;;
        UUID=*) printf '/dev/disk/by-uuid/%s\n' "${1#UUID=}" ;;
    esac
}

# phyllome_device WHERE: the block device for LABEL=... or UUID=..., or nothing.
phyllome_device() {
    local dev
    dev=$(phyllome_dev_path "$1")
    if [ -b "$dev" ]; then
        readlink -f -- "$dev"
        return 0
    fi
    blkid -l -o device -t "$1" 2> /dev/null
}

# phyllome_read_device WHERE PATH SOURCE: PATH on that filesystem, and nothing outside it.
phyllome_read_device() {
    local where="$1" path="$2" source="$3" dev mnt="$PHYLLOME_MNT" rc file
    dev=$(phyllome_device "$where")
    if [ -z "$dev" ]; then
        if [ "$PHYLLOME_KIND" = default ]; then
            phyllome_none "no phyllome.answers= kernel argument and no $PHYLLOME_LABEL partition: interactive install"
            return 0
        fi
        phyllome_fail "$source: no filesystem with $(phyllome_clean "$where") was found"
        return 1
    fi
    mkdir -p "$mnt"
    if ! mount -o ro,nosuid,nodev,noexec "$dev" "$mnt" 2> /dev/null; then
        rmdir "$mnt" 2> /dev/null
        phyllome_fail "$source: cannot mount $dev read-only"
        return 1
    fi
    file=$(phyllome_inside "$mnt" "$path")
    case $? in
        0)
            phyllome_accept "$file" "$source ($dev)"
            rc=$?
            ;;
        3)
            phyllome_fail "$source: $(phyllome_clean "$path") on $dev is a link that leads off that filesystem; refused"
            rc=1
            ;;
        *)
            phyllome_fail "$source: $dev holds no $(phyllome_clean "$path")"
            rc=1
            ;;
    esac
    umount "$mnt" || umount -l "$mnt"
    rmdir "$mnt" 2> /dev/null
    return $rc
}

phyllome_fetch_local() {
    local source="phyllome.answers=$PHYLLOME_SHOWN" file rc
    # The initqueue is over: what it waited for is not left in the live system's /run.
    rm -f -- "$PHYLLOME_DIR/wait-device" "$PHYLLOME_DIR/wait-until"
    case "$PHYLLOME_KIND" in
        default)
            phyllome_read_device "$PHYLLOME_WHERE" "$PHYLLOME_PATH" "partition labelled $PHYLLOME_LABEL"
            ;;
        hd)
            phyllome_read_device "$PHYLLOME_WHERE" "$PHYLLOME_PATH" "$source"
            ;;
        file)
            file=$(phyllome_inside "" "$PHYLLOME_PATH")
            rc=$?
            if [ $rc -eq 0 ]; then
                phyllome_accept "$file" "$source (initramfs)"
                return
            fi
            if [ -n "$NEWROOT" ]; then
                file=$(phyllome_inside "$NEWROOT" "$PHYLLOME_PATH")
                case $? in
                    0)
                        phyllome_accept "$file" "$source (live root)"
                        return
                        ;;
                    3)
                        phyllome_fail "$source: a link in the live root leads off it; refused"
                        return
                        ;;
                esac
            fi
            phyllome_fail "$source: no such file in the initramfs or the live root"
            ;;
        url)
            phyllome_fail "$source: no network interface came up, nothing was fetched"
            ;;
        error)
            phyllome_fail "$PHYLLOME_ERROR"
            ;;
    esac
}

# phyllome_device_ready: the initqueue's finished test while an hd: device is awaited. The device's name and the
# deadline are data in $PHYLLOME_DIR, never part of the hook's code.
phyllome_device_ready() {
    local dev until now
    [ -f "$PHYLLOME_DIR/wait-device" ] && [ -f "$PHYLLOME_DIR/wait-until" ] || return 0
    read -r dev < "$PHYLLOME_DIR/wait-device" || return 0
    read -r until < "$PHYLLOME_DIR/wait-until" || return 0
    [ -e "$dev" ] && return 0
    case "$until" in '' | *[!0-9]*) return 0 ;; esac
    read -r now _ < /proc/uptime
    [ "${now%%.*}" -ge "$until" ]
}

# Called from the cmdline hook: report a malformed argument once, ask for the network, wait for a named device.
phyllome_prepare() {
    local deadline
    [ -n "$PHYLLOME_WARNING" ] && warn "phyllome: $PHYLLOME_WARNING"
    case "$PHYLLOME_KIND" in
        error)
            phyllome_fail "$PHYLLOME_ERROR"
            ;;
        url)
            getargbool 0 rd.neednet || printf '%s\n' "rd.neednet=1" > /etc/cmdline.d/90phyllome-neednet.conf
            ;;
        hd)
            # Wait for the device in the initqueue, but never longer than PHYLLOME_DEV_WAIT seconds:
            # a missing key is one line on the console, not a boot that hangs.
            mkdir -p -m 0700 "$PHYLLOME_DIR"
            phyllome_dev_path "$PHYLLOME_WHERE" > "$PHYLLOME_DIR/wait-device"
            read -r deadline _ < /proc/uptime
            printf '%d\n' "$((${deadline%%.*} + PHYLLOME_DEV_WAIT))" > "$PHYLLOME_DIR/wait-until"
            printf '%s\n' '# 90phyllome: the answer device (its name is data in /run/phyllome, never code here)' \
                'type phyllome_device_ready > /dev/null 2>&1 || . /lib/phyllome-lib.sh' \
                'phyllome_device_ready' > "$hookdir/initqueue/finished/phyllome-device.sh"
            ;;
    esac
    return 0
}
