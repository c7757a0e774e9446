"""The initramfs module's side of the fleet contract, with dracut's own dracut-lib.sh (test_parse.py's prelude):
the identity table (tests/data/bootargs/identity.json, also run by tests/unit/test_fleet.py), the facts as valid
JSON, and curl's key pin and facts POST against a real TLS server on 127.0.0.1 (the whole fetch function)."""

from __future__ import annotations

import json

import pytest

from tests.dracut.test_parse import SHELLS, sh, testdir  # noqa: F401 (the fixture)
from tests.unit.test_fleet import IDENTITY, machine_tree, tls_server  # noqa: F401 (the fixture)

SET_ROOTS = 'PHYLLOME_SYS="$T_SYS"; PHYLLOME_PROC="$T_PROC"; '


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("case", IDENTITY, ids=[c["note"] for c in IDENTITY])
def test_the_identity_table(testdir, shell, case, tmp_path):  # noqa: F811
    sys_root, proc = machine_tree(tmp_path, case)
    result = sh(shell, testdir, "quiet", SET_ROOTS + 'phyllome_answer_url "$T_URL" "$(phyllome_identity_query)"',
                T_SYS=str(sys_root), T_PROC=str(proc), T_URL=case["url"], LC_ALL="C")
    assert result.returncode == 0, result.stderr
    assert result.stdout == case["expect"]


@pytest.mark.parametrize("shell", SHELLS)
def test_the_facts_are_json_with_the_installers_keys(testdir, shell, tmp_path):  # noqa: F811
    sys_root, proc = machine_tree(tmp_path, IDENTITY[3])  # hostile firmware strings
    (sys_root / "class/net/ens3").mkdir(parents=True)
    (sys_root / "class/net/ens3/address").write_text("52:54:00:aa:00:01\n")
    (sys_root / "block/vda/device").mkdir(parents=True)
    (sys_root / "block/vda/size").write_text("2048\n")
    (sys_root / "block/vda/device/model").write_text('Disk "x"\\\n')
    (proc / "cpuinfo").write_text("processor : 0\nflags\t\t: fpu svm\n")
    result = sh(shell, testdir, "quiet", SET_ROOTS + "phyllome_facts", T_SYS=str(sys_root), T_PROC=str(proc),
                LC_ALL="C")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert set(facts) == {"identity", "dmi", "network_interfaces", "disks", "virtualization"}
    assert facts["identity"] == {"uuid": "-a-d1", "mac": "52-54-00-aa-00-01", "serial": "ABCDEFx",
                                 "hostname": "hstx1"}
    assert facts["disks"] == [{"name": "vda", "size": 2048 * 512, "model": "Disk x", "serial": ""}]
    assert facts["virtualization"] == {"vmx": False, "svm": True, "in_a_vm": False}


FETCH = SET_ROOTS + """
set_http_header() { :; }
mkdir -p "$T_DIR" /run/initramfs/url-lib 2>/dev/null
phyllome_parse
phyllome_fetch_url
echo "rc=$?"
"""


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("which", ["right", "wrong"])
def test_curl_pins_the_servers_key(testdir, shell, which, tls_server, tmp_path):  # noqa: F811
    url, pin, _, seen = tls_server
    sys_root, proc = machine_tree(tmp_path, IDENTITY[0])
    key = pin if which == "right" else "sha256//" + "A" * 43 + "="
    before = len(seen)
    result = sh(shell, testdir, f"phyllome.answers={url}/generic phyllome.answers.pubkey={key}", FETCH,
                T_SYS=str(sys_root), T_PROC=str(proc), T_DIR=str(tmp_path / "run"), LC_ALL="C")
    status = (tmp_path / "run" / "boot-status").read_text()
    if which == "right":
        assert "rc=0" in result.stdout, result.stdout + result.stderr
        assert (tmp_path / "run" / "answers.toml").read_bytes() == b"version = 1\n"
        assert seen[-1][1] == ("/generic?uuid=4c4c4544-0042-3510-8051-b4c04f4e4b31&mac=52-54-00-aa-00-01"
                               "&serial=FLEET-A")
    else:
        assert "rc=1" in result.stdout, result.stdout + result.stderr
        assert status.startswith("failed phyllome.answers=" + url), status
        assert len(seen) == before  # refused at the handshake


@pytest.mark.parametrize("shell", SHELLS)
def test_a_428_is_answered_with_the_facts(testdir, shell, tls_server, tmp_path):  # noqa: F811
    url, pin, _, seen = tls_server
    sys_root, proc = machine_tree(tmp_path, IDENTITY[0])
    result = sh(shell, testdir, f"phyllome.answers={url}/ask-facts phyllome.answers.pubkey={pin}", FETCH,
                T_SYS=str(sys_root), T_PROC=str(proc), T_DIR=str(tmp_path / "run"), LC_ALL="C")
    assert "rc=0" in result.stdout, result.stdout + result.stderr
    assert (tmp_path / "run" / "answers.toml").read_bytes() == b"# for FLEET-A\n", result.stderr[-3000:]
    assert seen[-1][0] == "POST" and json.loads(seen[-1][2])["identity"]["serial"] == "FLEET-A"
