#!/bin/sh
# cmdline hook: read the phyllome.* kernel arguments, report a malformed one at once, ask for the network
# when the answer file is fetched over HTTP(S), and wait (bounded) for a named hd: device.
type phyllome_parse > /dev/null 2>&1 || . /lib/phyllome-lib.sh

phyllome_parse
phyllome_prepare
