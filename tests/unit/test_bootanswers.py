"""bootanswers.find_answers: the initramfs's outcome first, then discover.py's sources under the pin policy."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from phyllome_installer.bootanswers import Boot, find_answers, kernel_flag
from phyllome_installer.core.errors import UserError
from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.discover import Discovery

ANSWERS = b"version = 1\n# boot\n"
PIN = hashlib.sha256(ANSWERS).hexdigest()


@pytest.fixture
def no_labels() -> RecordingRunner:
    runner = RecordingRunner()
    runner.respond(["blkid", "-L"], returncode=2)
    return runner


def find(tmp_path: Path, runner, cmdline: str = "quiet", status: str | None = None, boot_file: bytes | None = None):
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    if status is not None:
        (run / "boot-status").write_text(status + "\n")
    if boot_file is not None:
        (run / "answers.toml").write_bytes(boot_file)
    discovery = Discovery(runner, cmdline=tmp_path / "cmdline")
    return find_answers(discovery, boot=Boot(run / "answers.toml", run / "boot-status"))


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.server.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(ANSWERS)))
        self.end_headers()
        self.wfile.write(ANSWERS)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/answers.toml"


def test_what_the_initramfs_found_is_the_answer_and_is_not_fetched_again(tmp_path, no_labels, server):
    found = find(tmp_path, no_labels, f"phyllome.answers={url(server)}", f"found phyllome.answers={url(server)}",
                 ANSWERS)
    assert found.source == f"phyllome.answers={url(server)} (at boot)"
    assert found.data == ANSWERS and found.name == str(tmp_path / "run" / "answers.toml")
    assert server.requests == [] and no_labels.calls == []


def test_a_refusal_at_boot_is_not_bypassed(tmp_path, no_labels, server):
    status = f"failed phyllome.answers={url(server)}: refused: its sha256 is 00"
    with pytest.raises(UserError, match="at boot: phyllome.answers=http://127.0.0.1:.*refused"):
        find(tmp_path, no_labels, f"phyllome.answers={url(server)} phyllome.answers.insecure=1", status)
    assert server.requests == []


def test_found_at_boot_but_gone_is_an_error(tmp_path, no_labels):
    with pytest.raises(UserError, match="does not exist"):
        find(tmp_path, no_labels, "quiet", "found partition labelled PHYLLOME-ANS (/dev/sdb1)")


def test_nothing_at_boot_looks_for_the_partition_again(tmp_path, no_labels):
    assert find(tmp_path, no_labels, "quiet", "none no phyllome.answers= kernel argument") is None
    assert no_labels.argvs == [("blkid", "-L", "PHYLLOME-ANS")]


def test_plain_http_without_a_pin_is_refused_before_any_request(tmp_path, no_labels, server):
    with pytest.raises(UserError, match="refused: plain http:// needs phyllome.answers.sha256="):
        find(tmp_path, no_labels, f"phyllome.answers={url(server)}")
    with pytest.raises(UserError, match="refused"):
        find(tmp_path, no_labels, f"phyllome.answers={url(server)} phyllome.answers.insecure=0")
    assert server.requests == []
    found = find(tmp_path, no_labels, f"phyllome.answers={url(server)} phyllome.answers.insecure")
    assert found.data == ANSWERS


def test_the_pin_is_checked(tmp_path, no_labels, server):
    found = find(tmp_path, no_labels, f"phyllome.answers={url(server)} phyllome.answers.sha256={PIN.upper()}")
    assert found.data == ANSWERS
    with pytest.raises(UserError, match=f"refused: its sha256 is {PIN}, phyllome.answers.sha256= pins 0000"):
        find(tmp_path, no_labels, f"phyllome.answers={url(server)} phyllome.answers.sha256={'0' * 64}")
    assert not (tmp_path / "copy" / "answers.toml").exists()


def test_the_pin_applies_to_a_file_named_on_the_kernel_command_line(tmp_path, no_labels):
    source = tmp_path / "a.toml"
    source.write_bytes(b"version = 1\n# another file\n")
    with pytest.raises(UserError, match="refused: its sha256 is"):
        find(tmp_path, no_labels, f"phyllome.answers={source} phyllome.answers.sha256={PIN}")


def test_kernel_flag():
    assert kernel_flag("quiet phyllome.unattended", "phyllome.unattended")
    assert kernel_flag("phyllome.unattended=1", "phyllome.unattended")
    assert not kernel_flag("phyllome.unattended=0", "phyllome.unattended")
    assert not kernel_flag("phyllome.unattended=off", "phyllome.unattended")
    assert not kernel_flag("quiet", "phyllome.unattended")
    assert not kernel_flag("quiet -- phyllome.unattended=1", "phyllome.unattended")
