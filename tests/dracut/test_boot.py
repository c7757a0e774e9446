"""Boot tests of the 90phyllome dracut module: a real initramfs, a real kernel under QEMU (TCG).

Every boot ends in report.sh, the init of the "live root" after switch_root: if the report is on the console, the
boot went on; what it prints is what the module left in /run/phyllome.
"""

from __future__ import annotations

import base64
import hashlib
import socket

import pytest

from tests.dracut.answerserver import AnswerServer, CutShort
from tests.dracut.conftest import Link, labelled_disk
from tests.dracut.harness import SERIAL

pytestmark = pytest.mark.dracut

ANSWERS = b'version = 1\n\n[host]\nhostname = "fleet-42"\n'
OTHER = b'version = 1\n\n[host]\nhostname = "someone-else"\n'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def module_lines(boot) -> list[str]:
    return boot.lines("phyllome:")


def assert_refused(boot, *words: str) -> None:
    assert "PHYLLOME-REPORT-BEGIN" in boot.console, "the boot did not go on to the live root:\n" + boot.console
    assert boot.answers is None
    assert boot.status is not None and boot.status.startswith("failed "), boot.report
    lines = module_lines(boot)
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], lines[0]
        assert word in boot.status


def test_partition_labelled_phyllome_ans(live, tmp_path):
    disk = labelled_disk(tmp_path / "key.img", "PHYLLOME-ANS", {"/answers.toml": ANSWERS}, "ext4")
    boot = live(disk=disk)
    assert boot.answers == ANSWERS, boot.console
    assert boot.mode == "600"
    assert boot.status.startswith("found partition labelled PHYLLOME-ANS (/dev/vda1)")
    assert module_lines(boot) == []  # success is quiet under `quiet`


def test_hd_label_with_a_space_in_a_quoted_kernel_argument(live, tmp_path):
    disk = labelled_disk(tmp_path / "key.img", "MY KEY", {"/sub/fleet.toml": ANSWERS, "/answers.toml": OTHER})
    boot = live('"phyllome.answers=hd:LABEL=MY KEY:/sub/fleet.toml"', disk=disk)
    assert boot.answers == ANSWERS, boot.console
    assert boot.mode == "600"
    assert boot.status == "found phyllome.answers=hd:LABEL=MY KEY:/sub/fleet.toml (/dev/vda1)"


def test_hd_label_with_systemd_in_the_initramfs(live_systemd, tmp_path):
    # dracut-cmdline.service, the initqueue's finished hook, dracut-pre-pivot.service, systemd's switch-root.
    disk = labelled_disk(tmp_path / "key.img", "MY KEY", {"/sub/fleet.toml": ANSWERS})
    boot = live_systemd('"phyllome.answers=hd:LABEL=MY KEY:/sub/fleet.toml"', disk=disk)
    assert boot.answers == ANSWERS, boot.console
    assert boot.mode == "600"
    assert boot.status == "found phyllome.answers=hd:LABEL=MY KEY:/sub/fleet.toml (/dev/vda1)"
    assert module_lines(boot) == []


def test_a_link_on_the_key_that_leads_off_it_is_refused(live, tmp_path):
    # /etc/initrd-release exists only in the initramfs: read through the key's link, it would pass as the key's.
    disk = labelled_disk(tmp_path / "key.img", "LINKS", {"/answers.toml": Link("/etc/initrd-release"),
                                                          "/ok.toml": ANSWERS}, "ext4")
    boot = live("phyllome.answers=hd:LABEL=LINKS:/answers.toml", disk=disk)
    assert_refused(boot, "/answers.toml on /dev/vda1 is a link that leads off that filesystem; refused")


def test_file_in_the_live_root(live, tmp_path):
    # The live root is this machine's root over 9p: a file there is not in the initramfs.
    answers = tmp_path / "live-root-answers.toml"
    answers.write_bytes(ANSWERS)
    boot = live(f"phyllome.answers=file:{answers}")
    assert boot.answers == ANSWERS, boot.console
    assert boot.status == f"found phyllome.answers=file:{answers} (live root)"


def test_http_with_a_sha256_pin_sends_the_machine_identity(live):
    with AnswerServer({"/fleet/answers.toml": ANSWERS}) as server:
        boot = live(f"phyllome.answers={server.url('/fleet/answers.toml')}", f"phyllome.answers.sha256={sha(ANSWERS)}")
    assert boot.answers == ANSWERS, boot.console
    assert boot.mode == "600"
    assert boot.status == f"found phyllome.answers={server.url('/fleet/answers.toml')}"
    assert len(server.seen) == 1
    headers = server.seen[0].headers
    assert headers["X-Phyllome-Serial"] == SERIAL
    assert headers["X-Phyllome-MAC-0"].endswith(" 52:54:00:12:34:56")
    # The same identity in the query, as matchbox's /generic selectors read it (docs/fleet.md).
    assert server.seen[0].identity["serial"] == SERIAL and server.seen[0].identity["mac"] == "52-54-00-12-34-56"


def test_credentials_are_sent_and_never_shown(live):
    # curl reads the URL from a config on its stdin: the password is on no command line, console or status line.
    with AnswerServer({"/private/answers.toml?token=t0k3n": ANSWERS}) as server:
        url = server.url("/private/answers.toml?token=t0k3n").replace("http://", "http://ops:s3cr3t%23pw@")
        boot = live(f"phyllome.answers={url}", f"phyllome.answers.sha256={sha(ANSWERS)}")
    assert boot.answers == ANSWERS, boot.console
    assert [s.path for s in server.seen] == ["/private/answers.toml?token=t0k3n"]
    assert server.seen[0].headers["Authorization"] == "Basic " + base64.b64encode(b"ops:s3cr3t#pw").decode()
    shown = server.url("/private/answers.toml").replace("http://", "http://***@") + "?***"
    assert boot.status == f"found phyllome.answers={shown}"
    for secret in ("s3cr3t", "t0k3n"):
        assert secret not in boot.console.replace(url, "")  # the kernel prints its own command line, once


def test_http_with_a_wrong_sha256_is_refused(live):
    with AnswerServer({"/answers.toml": OTHER}) as server:
        boot = live(f"phyllome.answers={server.url('/answers.toml')}", f"phyllome.answers.sha256={sha(ANSWERS)}")
    assert len(server.seen) == 1
    assert_refused(boot, "refused", f"its sha256 is {sha(OTHER)}", sha(ANSWERS))


def test_plain_http_without_a_pin_is_refused_before_any_request(live):
    with AnswerServer({"/answers.toml": ANSWERS}) as server:
        boot = live(f"phyllome.answers={server.url('/answers.toml')}")
    assert server.seen == []
    assert_refused(boot, "refused", "phyllome.answers.sha256=", "phyllome.answers.insecure=1")


def test_a_body_cut_short_is_refused(live):
    with AnswerServer({"/answers.toml": CutShort(ANSWERS[:10], len(ANSWERS))}) as server:
        boot = live(f"phyllome.answers={server.url('/answers.toml')}", "phyllome.answers.insecure=1")
    assert len(server.seen) >= 1
    assert_refused(boot, "cannot fetch: transfer closed with")


def test_http_404_is_one_line_and_the_boot_goes_on(live):
    with AnswerServer({}) as server:
        boot = live(f"phyllome.answers={server.url('/nope.toml')}", "phyllome.answers.insecure=1")
    assert [s.path for s in server.seen] == ["/nope.toml"]
    assert_refused(boot, "cannot fetch: The requested URL returned error: 404")


def test_unreachable_server_is_one_line_and_the_boot_goes_on(live):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    boot = live(f"phyllome.answers=http://10.0.2.2:{port}/answers.toml", "phyllome.answers.insecure=1")
    assert_refused(boot, "cannot fetch: Failed to connect to 10.0.2.2 port", f"port {port}")
