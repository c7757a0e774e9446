"""``phyllome-firstboot run`` on an installed host whose root is read-only (a real read-only mount): refused up
front with the reason, exit 2, the marker kept; never an internal error halfway through."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.loopdev import sh

pytestmark = pytest.mark.root
FIRSTBOOT = Path(sys.executable).parent / "phyllome-firstboot"


def test_run_on_a_read_only_root_is_refused_before_anything(tmp_path):
    root = tmp_path / "host"
    root.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root))
    try:
        (root / "etc" / "phyllome").mkdir(parents=True)
        (root / "etc" / "phyllome" / "firstboot").write_text("installed-by=test\n")
        (root / "etc" / "phyllome" / "firstboot.toml").write_text("[firstboot]\nenabled = false\n")
        sh("mount", "-o", "remount,ro", str(root))
        result = subprocess.run([str(FIRSTBOOT), "run", "--unattended", "--root", str(root), "--uri",
                                 "test:///default", "--log", "/dev/null"], capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "cannot be written (a read-only root?)" in result.stderr and "Traceback" not in result.stderr
        assert "first boot done" not in result.stdout
        assert (root / "etc" / "phyllome" / "firstboot").exists()
    finally:
        subprocess.run(["umount", str(root)], check=False)
