"""Disks and filesystems: probe, layout, apply, fscrypt. Never UI."""
