"""The first-boot domain: hardware checks, GPU strategy, the primary VM. Never UI."""
