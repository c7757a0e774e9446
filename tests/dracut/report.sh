#!/bin/sh
# The guest's init after the switch to the "live root" (this machine's root, read-only over 9p): print what the
# 90phyllome module left in /run/phyllome between markers on the console, then power off.
echo "PHYLLOME-REPORT-BEGIN"
if [ -f /run/phyllome/boot-status ]; then
    echo "status: $(cat /run/phyllome/boot-status)"
fi
if [ -f /run/phyllome/answers.toml ]; then
    echo "mode: $(stat -c %a /run/phyllome/answers.toml)"
    echo "PHYLLOME-ANSWERS-BEGIN"
    cat /run/phyllome/answers.toml
    echo "PHYLLOME-ANSWERS-END"
fi
echo "PHYLLOME-REPORT-END"
echo o > /proc/sysrq-trigger
sleep 30
