"""Phyllome OS installer: the core and the composition root (see docs/architecture.md)."""

__version__ = "0.1.0"
