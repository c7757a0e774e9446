#!/bin/sh
# phyllome-args.sh: the phyllome.answers* kernel arguments, read in the one grammar the installer shares
# (phyllome_installer/discover.py `parse_spec`, message for message); the cases both sides pass are in
# tests/data/bootargs/cases.json. Words are split as the kernel splits them, and `--` ends them (the rest is
# init's). Sourced by phyllome-lib.sh, which sets PHYLLOME_LABEL; uses dracut-lib's getcmdline. Pure: it reads the
# command line and sets variables, nothing else.

# phyllome_clean TEXT: TEXT for a console line or the status file: control characters and backslashes as '?'.
phyllome_clean() {
    printf '%s' "$1" | tr '\001-\037\177\\' '?'
}

# phyllome_shown SPEC: SPEC as it may be shown: a URL's user information and query masked, then cleaned.
phyllome_shown() {
    local spec="$1" scheme rest
    case "$spec" in
        http://* | https://*) ;;
        *)
            phyllome_clean "$spec"
            return 0
            ;;
    esac
    scheme=${spec%%://*}
    rest=${spec#*://}
    case "$rest" in *@*) rest="***@${rest##*@}" ;; esac
    case "$rest" in *[?#]*) rest="${rest%%[?#]*}?***" ;; esac
    phyllome_clean "$scheme://$rest"
}

# phyllome_url_ok URL: whether URL is http(s)://[USERINFO@]HOST[:PORT][/PATH...] in the one grammar.
phyllome_url_ok() {
    local url="$1" auth userinfo hostport host port
    # Only the characters a URL may hold (RFC 3986): no space, quote, backslash or control character.
    [ -z "$(printf '%s' "$url" | tr -d 'A-Za-z0-9._~:/?#@!$&()*+,;=%[]'"'"'-')" ] || return 1
    auth=${url#*://}
    auth=${auth%%[/?#]*}
    hostport=$auth
    case "$auth" in
        *@*)
            userinfo=${auth%@*}
            hostport=${auth##*@}
            case "$userinfo" in *@*) return 1 ;; esac
            ;;
    esac
    case "$hostport" in
        \[*\])
            host=${hostport#\[}
            host=${host%\]}
            port=
            ;;
        \[*\]:*)
            host=${hostport#\[}
            host=${host%%\]*}
            port=${hostport#"[$host]:"}
            [ "[$host]:$port" = "$hostport" ] && [ -n "$port" ] || return 1
            ;;
        *:*)
            host=${hostport%%:*}
            port=${hostport#*:}
            [ -n "$port" ] || return 1
            ;;
        *)
            host=$hostport
            port=
            ;;
    esac
    case "$hostport" in
        \[*)
            case "$host" in '' | *[!0-9A-Fa-f:.]*) return 1 ;; esac
            case "$host" in *:*) ;; *) return 1 ;; esac
            ;;
        *)
            case "$host" in '' | *[!A-Za-z0-9._-]*) return 1 ;; esac
            ;;
    esac
    if [ -n "$port" ]; then
        case "$port" in *[!0-9]* | ??????*) return 1 ;; esac
        [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || return 1
    fi
    return 0
}

# phyllome_pubkeys_ok PINS: whether PINS is sha256//BASE64 (43 characters and '='), several separated by ';'.
phyllome_pubkeys_ok() {
    local rest="$1;" one
    while [ -n "$rest" ]; do
        one=${rest%%;*}
        rest=${rest#*;}
        case "$one" in sha256//*=) ;; *) return 1 ;; esac
        one=${one#sha256//}
        one=${one%=}
        [ ${#one} -eq 43 ] || return 1
        [ -z "$(printf '%s' "$one" | tr -d 'A-Za-z0-9+/')" ] || return 1
    done
    return 0
}

# phyllome_bool NAME FORM VALUE: sets _phyllome_bool to 1 or 0. FORM is absent, bare (`NAME` alone) or value.
# Clearly true: 1 yes y true on; clearly false: 0 no n false off (any case). Anything else is never taken as
# true: it is off, with a warning for the console.
phyllome_bool() {
    local value
    case "$2" in
        absent)
            _phyllome_bool=0
            return 0
            ;;
        bare)
            _phyllome_bool=1
            return 0
            ;;
    esac
    value=$(printf '%s' "$3" | tr 'A-Z' 'a-z')
    case "$value" in
        1 | yes | y | true | on) _phyllome_bool=1 ;;
        0 | no | n | false | off) _phyllome_bool=0 ;;
        *)
            _phyllome_bool=0
            PHYLLOME_WARNING="$1=$(phyllome_clean "$3"): not a boolean (use 1, yes, true, on or 0, no, false, off); taken as off"
            ;;
    esac
}

# phyllome_word WORD: one word of the command line, as the kernel reads it (quotes around it or its value dropped).
phyllome_word() {
    local word="$1" value
    case "$word" in
        \"*)
            word=${word#\"}
            word=${word%\"}
            ;;
    esac
    case "$word" in
        *=*)
            value=${word#*=}
            case "$value" in
                \"*)
                    value=${value#\"}
                    value=${value%\"}
                    ;;
            esac
            ;;
        *) value= ;;
    esac
    case "$word" in
        phyllome.answers=*) PHYLLOME_SPEC=$value ;;
        phyllome.answers.sha256=*) PHYLLOME_PIN=$value ;;
        phyllome.answers.insecure=*)
            _phyllome_insecure_form=value
            _phyllome_insecure=$value
            ;;
        phyllome.answers.insecure)
            _phyllome_insecure_form=bare
            _phyllome_insecure=
            ;;
        phyllome.answers.pubkey=*) PHYLLOME_PUBKEY=$value ;;
        phyllome.answers.facts=*)
            _phyllome_facts_form=value
            _phyllome_facts=$value
            ;;
        phyllome.answers.facts)
            _phyllome_facts_form=bare
            _phyllome_facts=
            ;;
        phyllome.events=*) PHYLLOME_EVENTS=$value ;;
    esac
}

# phyllome_scan: every word of the kernel command line up to `--`, split as the kernel splits it (whitespace
# outside double quotes ends a word; a quote toggles quoting and stays in the word), each to phyllome_word.
phyllome_scan() {
    local rest word chunk ws
    ws=$(printf ' \t\n\v\f\r_')
    ws=${ws%_}
    rest=$(getcmdline)
    while :; do
        rest=${rest#"${rest%%[!$ws]*}"}
        [ -n "$rest" ] || break
        word=
        while :; do
            chunk=${rest%%[\"$ws]*}
            word=$word$chunk
            rest=${rest#"$chunk"}
            case "$rest" in
                \"*\"*)
                    rest=${rest#\"}
                    word="$word\"${rest%%\"*}\""
                    rest=${rest#*\"}
                    ;;
                \"*)
                    word=$word$rest
                    rest=
                    ;;
                *) break ;;
            esac
        done
        [ "$word" = "--" ] && break
        phyllome_word "$word"
    done
}

# phyllome_error MESSAGE: the argument is refused with MESSAGE (once; the first problem found wins).
phyllome_error() {
    PHYLLOME_KIND=error
    [ -n "$PHYLLOME_ERROR" ] || PHYLLOME_ERROR=$1
}

# phyllome_parse: sets PHYLLOME_SPEC, PHYLLOME_SHOWN (safe to show), PHYLLOME_KIND (default|file|hd|url|error),
# PHYLLOME_WHERE (LABEL=/UUID=), PHYLLOME_PATH, PHYLLOME_URL, PHYLLOME_SHA256, PHYLLOME_INSECURE (0|1),
# PHYLLOME_ERROR, PHYLLOME_WARNING, PHYLLOME_PUBKEY (sha256//...;...), PHYLLOME_FACTS (0|1), PHYLLOME_EVENTS.
phyllome_parse() {
    local rest where shown
    PHYLLOME_SPEC=
    PHYLLOME_PIN=
    _phyllome_insecure_form=absent
    _phyllome_insecure=
    PHYLLOME_KIND=
    PHYLLOME_WHERE=
    PHYLLOME_PATH=
    PHYLLOME_URL=
    PHYLLOME_ERROR=
    PHYLLOME_WARNING=
    PHYLLOME_PUBKEY=
    PHYLLOME_EVENTS=
    _phyllome_facts_form=absent
    _phyllome_facts=
    phyllome_scan
    phyllome_bool phyllome.answers.insecure "$_phyllome_insecure_form" "$_phyllome_insecure"
    PHYLLOME_INSECURE=$_phyllome_bool
    phyllome_bool phyllome.answers.facts "$_phyllome_facts_form" "$_phyllome_facts"
    PHYLLOME_FACTS=$_phyllome_bool
    case "$PHYLLOME_EVENTS" in
        '') ;;
        http://* | https://*) phyllome_url_ok "$PHYLLOME_EVENTS" || _phyllome_events_bad=1 ;;
        *) _phyllome_events_bad=1 ;;
    esac
    if [ -n "$_phyllome_events_bad" ]; then
        [ -n "$PHYLLOME_WARNING" ] || PHYLLOME_WARNING="phyllome.events= (not shown: it may hold a token): expected http(s)://[USER:PASSWORD@]HOST[:PORT]/PATH (percent-encode @, /, ?, # and spaces in a password); no events are sent"
        PHYLLOME_EVENTS=
        _phyllome_events_bad=
    fi
    PHYLLOME_SHA256=$(printf '%s' "$PHYLLOME_PIN" | tr 'A-F' 'a-f')
    PHYLLOME_SHOWN=$(phyllome_shown "$PHYLLOME_SPEC")
    shown="phyllome.answers=$PHYLLOME_SHOWN"
    if [ "$(printf '%s' "$PHYLLOME_SPEC" | tr -d '\001-\037\177')" != "$PHYLLOME_SPEC" ]; then
        phyllome_error "$shown: control characters are refused"
    fi
    case "$PHYLLOME_SPEC" in
        "")
            PHYLLOME_KIND=default
            PHYLLOME_WHERE="LABEL=$PHYLLOME_LABEL"
            PHYLLOME_PATH=/answers.toml
            ;;
        http://* | https://*)
            PHYLLOME_KIND=url
            PHYLLOME_URL=$PHYLLOME_SPEC
            phyllome_url_ok "$PHYLLOME_URL" || phyllome_error "$shown: expected http(s)://[USER:PASSWORD@]HOST[:PORT]/PATH (percent-encode @, /, ?, # and spaces in a password)"
            ;;
        file:///*)
            PHYLLOME_KIND=file
            PHYLLOME_PATH=${PHYLLOME_SPEC#file://}
            ;;
        file://*)
            phyllome_error "$shown: a file: URL names no host here: use file:///path or file:/path"
            ;;
        file:/*)
            PHYLLOME_KIND=file
            PHYLLOME_PATH=${PHYLLOME_SPEC#file:}
            ;;
        /*)
            PHYLLOME_KIND=file
            PHYLLOME_PATH=$PHYLLOME_SPEC
            ;;
        hd:*:/?*)
            rest=${PHYLLOME_SPEC#hd:}
            where=${rest%%:/*}
            PHYLLOME_WHERE=$where
            PHYLLOME_PATH=${rest#"$where":}
            case "$where" in
                LABEL=*[\"\\]*) phyllome_error "$shown: expected hd:LABEL=NAME:/path or hd:UUID=UUID:/path" ;;
                LABEL=?*) PHYLLOME_KIND=hd ;;
                UUID=*[!0-9A-Fa-f-]* | UUID=) phyllome_error "$shown: expected hd:LABEL=NAME:/path or hd:UUID=UUID:/path" ;;
                UUID=*) PHYLLOME_KIND=hd ;;
                *) phyllome_error "$shown: expected hd:LABEL=NAME:/path or hd:UUID=UUID:/path" ;;
            esac
            ;;
        hd:*)
            phyllome_error "$shown: expected hd:LABEL=NAME:/path or hd:UUID=UUID:/path"
            ;;
        *)
            phyllome_error "$shown: unsupported form (use file:/path, hd:LABEL=NAME:/path, hd:UUID=UUID:/path, http:// or https://)"
            ;;
    esac
    case "$PHYLLOME_KIND" in
        file | hd)
            case "$PHYLLOME_PATH/" in
                */../*) phyllome_error "$shown: a path with .. is refused (the answer file is read from the named filesystem only)" ;;
            esac
            ;;
    esac
    if [ -n "$PHYLLOME_SHA256" ]; then
        case "$PHYLLOME_SHA256" in
            *[!0-9a-f]*) phyllome_error "phyllome.answers.sha256=$(phyllome_clean "$PHYLLOME_PIN"): expected 64 hexadecimal digits" ;;
            *) [ ${#PHYLLOME_SHA256} -eq 64 ] || phyllome_error "phyllome.answers.sha256=$(phyllome_clean "$PHYLLOME_PIN"): expected 64 hexadecimal digits" ;;
        esac
    fi
    if [ -n "$PHYLLOME_PUBKEY" ]; then
        if ! phyllome_pubkeys_ok "$PHYLLOME_PUBKEY"; then
            phyllome_error "phyllome.answers.pubkey=$(phyllome_clean "$PHYLLOME_PUBKEY"): expected sha256//BASE64 (curl's --pinnedpubkey), several separated by ;"
        else
            case "$PHYLLOME_SPEC" in
                https://*) ;;
                *) phyllome_error "phyllome.answers.pubkey= pins a TLS key: it needs an https:// phyllome.answers=" ;;
            esac
        fi
    fi
    if [ "$PHYLLOME_KIND" = url ] && [ -z "$PHYLLOME_SHA256" ] && [ "$PHYLLOME_INSECURE" != 1 ]; then
        case "$PHYLLOME_URL" in
            http://*) phyllome_error "$shown: refused: plain http:// needs phyllome.answers.sha256= (or phyllome.answers.insecure=1)" ;;
        esac
    fi
    if [ -n "$PHYLLOME_ERROR" ]; then
        PHYLLOME_KIND=error
        PHYLLOME_WHERE=
        PHYLLOME_PATH=
        PHYLLOME_URL=
        PHYLLOME_PUBKEY=
        PHYLLOME_FACTS=0
    fi
    return 0
}
