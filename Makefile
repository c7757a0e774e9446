# Phyllome OS installer: one-command setup, test and demo on Debian 12 (run as root).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Debian packages that make the stack real (DESIGN.md section 4). Never libblockdev-plugins-all.
# systemd: systemd-analyze verifies the units in the tests (no running systemd needed).
DEB_PACKAGES := python3-venv python3-dev build-essential pkg-config libparted-dev libvirt-dev \
	python3-gi gir1.2-blockdev-2.0 python3-blockdev python3-bytesize \
	libblockdev-btrfs2 libblockdev-crypto2 libblockdev-dm2 libblockdev-fs2 libblockdev-loop2 \
	libblockdev-lvm2 libblockdev-mdraid2 libblockdev-mpath2 libblockdev-nvdimm2 libblockdev-part2 \
	libblockdev-swap2 gir1.2-ostree-1.0 ostree f2fs-tools fscrypt dosfstools mtools fusefat e2fsprogs fdisk \
	util-linux libvirt-clients libvirt-daemon-system qemu-system-x86 ovmf swtpm swtpm-tools \
	gir1.2-libosinfo-1.0 osinfo-db tmux libxml2-utils qemu-utils xorriso grub-efi-amd64-bin grub2-common \
	pci.ids busybox-static cpio kmod psmisc dracut-core dracut-network curl systemd mmdebstrap \
	squashfs-tools isomd5sum grub-pc-bin ipxe-qemu openssl

.PHONY: help setup deb-packages test demo demo-firstboot docs bench payload iso clean

help:
	@echo "make demo   run the installer TUI against a safe sandbox disk image"
	@echo "make demo-firstboot  run the first-boot screens against a safe sandbox (docs/firstboot.md)"
	@echo "make test   ruff + the import contracts + the whole test suite (installs everything it needs first)"
	@echo "make setup  install Debian packages and the Python venv (idempotent)"
	@echo "make docs   regenerate generated documentation"
	@echo "make bench  performance benchmarks"
	@echo "make payload  build (or find in the cache) the bootable payload and its second version"
	@echo "make iso    build (or find in the cache) the live medium: a hybrid UEFI/BIOS ISO (docs/live-image.md)"

setup: deb-packages $(STAMP)

# Installs only what is missing; a second run is a single dpkg-query.
deb-packages:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null | grep -qx installed || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt-get: installing" $$missing; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends $$missing; \
	fi

$(VENV)/bin/python:
	/usr/bin/python3 -m venv --system-site-packages $(VENV)

# Re-installs only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest

demo: setup
	$(VENV)/bin/phyllome-install --sandbox

demo-firstboot: setup
	$(VENV)/bin/phyllome-firstboot --sandbox

docs: setup
	$(PY) -m phyllome_installer.docgen docs/answer-file.md

# The bootable payload: a Debian 12 ostree commit under /var/cache/phyllome-payload/<key>/repo (docs/install.md).
payload: setup
	$(PY) -m payload.build --next

# The live medium: /var/cache/phyllome-live/medium-<key>/phyllome-live.x86_64.iso, SHA256SUMS and pxe/ beside it.
iso: setup
	time $(PY) -m live.build

bench: setup
	$(VENV)/bin/pytest benchmarks -p no:cacheprovider -s

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
