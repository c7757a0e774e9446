#!/usr/bin/env bash
# Capture this machine's hardware facts as a saved machine tree for `phyllome-firstboot check --root DIR`.
# Usage: sudo tests/data/machines/capture.sh OUT_DIR
# Copies the few /proc and /sys files the checks read (no serial numbers, no MAC addresses, no disk contents),
# records device nodes as empty files, keeps the sysfs symlinks the GPU analysis follows, and writes
# phyllome-capture.json with what only a syscall can tell (/dev/kvm ioctls, free space, VM store encryption).
set -euo pipefail
out=${1:?usage: capture.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

copy() {  # copy a file's content if it is readable
  local src=$1
  [ -r "$src" ] || return 0
  mkdir -p "$out$(dirname "$src")"
  cat "$src" > "$out$src" 2>/dev/null || rm -f "$out$src"
}
mark() {  # record that a path exists
  [ -e "$1" ] || return 0
  mkdir -p "$out$(dirname "$1")"
  : > "$out$1"
}
link() {  # keep a symlink, as it is
  [ -L "$1" ] || return 0
  mkdir -p "$out$(dirname "$1")"
  ln -sfn "$(readlink "$1")" "$out$1"
}

copy /proc/cpuinfo
copy /proc/meminfo
copy /proc/cmdline
copy /proc/self/mountinfo
for t in /sys/firmware/acpi/tables/*; do mark "$t"; done
for d in /sys/kernel/iommu_groups/*/devices/*; do [ -e "$d" ] && mark "$d"; done
for u in /sys/class/iommu/*; do
  [ -e "$u" ] || continue
  copy "$u/intel-iommu/ecap"
  [ -d "$u/amd-iommu" ] && { mkdir -p "$out$u/amd-iommu"; cat "$u/amd-iommu/features" > "$out$u/amd-iommu/features" 2>/dev/null || echo unknown > "$out$u/amd-iommu/features"; }
done
for dev in /sys/bus/pci/devices/*; do
  for f in class vendor device boot_vga sriov_totalvfs; do copy "$dev/$f"; done
  link "$dev/driver"
  link "$dev/iommu_group"
  for r in "$dev"/drm/renderD*; do mark "$r"; done
  for m in "$dev"/mdev_supported_types/*; do [ -e "$m" ] && copy "$m/name"; done
done
for p in /sys/module/kvm*/parameters/nested /sys/module/kvm/parameters/ignore_msrs; do copy "$p"; done
copy /sys/fs/cgroup/cgroup.controllers
# cgroup v1 hierarchies are directories: keep a file in each (git keeps no empty directories)
for c in /sys/fs/cgroup/*; do [ -d "$c" ] && mkdir -p "$out$c" && : > "$out$c/.captured"; done
for n in /dev/kvm /dev/vhost-net /dev/net/tun /usr/bin/swtpm; do mark "$n"; done
for j in /usr/share/qemu/firmware/*.json; do copy "$j"; done

# What only syscalls can tell, measured by the project's own code on the live root.
here=$(cd "$(dirname "$0")/../../.." && pwd)
PYTHONPATH="$here" python3 - "$out" <<'PY'
import json, sys
from firstboot.checks import Machine
m = Machine()
json.dump({"kvm": m.kvm(), "store_free_bytes": m.store_free(), "store_encrypted": m.store_encrypted()},
          open(sys.argv[1] + "/phyllome-capture.json", "w"), indent=2)
PY
echo "captured into $out"
