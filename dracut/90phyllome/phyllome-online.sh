#!/bin/sh
# initqueue/online hook ($1: the interface that came up): fetch an http(s) answer file once.
type phyllome_parse > /dev/null 2>&1 || . /lib/phyllome-lib.sh

phyllome_parse
[ "$PHYLLOME_KIND" = url ] && ! phyllome_done && phyllome_fetch_url
