#!/bin/sh
# pre-pivot hook: the live root is mounted at $NEWROOT; read file:, hd: and the PHYLLOME-ANS partition.
type phyllome_parse > /dev/null 2>&1 || . /lib/phyllome-lib.sh

phyllome_parse
phyllome_done || phyllome_fetch_local
