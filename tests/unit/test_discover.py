from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import pytest

from phyllome_installer.core.errors import UserError
from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.discover import Discovery, kernel_argument

ANSWERS = b"version = 1\n# test\n"


@pytest.fixture
def no_labels() -> RecordingRunner:
    """No filesystem carries a label here: blkid -L answers 2, as the real blkid does."""
    runner = RecordingRunner()
    runner.respond(["blkid", "-L"], returncode=2)
    return runner


def make(tmp_path: Path, runner, cmdline: str = "quiet", **kw) -> Discovery:
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    return Discovery(runner, cmdline=tmp_path / "cmdline", dest=tmp_path / "run" / "answers.toml", **kw)


def check_copy(found, tmp_path, source_start):
    assert found.source.startswith(source_start)
    assert found.path == tmp_path / "run" / "answers.toml"
    assert found.path.read_bytes() == ANSWERS
    assert oct(os.stat(found.path).st_mode & 0o777) == "0o600"


def test_kernel_argument_parsing():
    assert kernel_argument("quiet phyllome.answers=/a.toml rw") == "/a.toml"
    assert kernel_argument("phyllome.answers=/a phyllome.answers=/b") == "/b"
    assert kernel_argument('x "phyllome.answers=hd:LABEL=MY KEY:/a.toml"') == "hd:LABEL=MY KEY:/a.toml"
    assert kernel_argument("quiet -- phyllome.answers=/init-only") is None
    assert kernel_argument("phyllome.answersx=1") is None


def test_cli_path_comes_first(tmp_path, no_labels):
    src = tmp_path / "a.toml"
    src.write_bytes(ANSWERS)
    found = make(tmp_path, no_labels, "phyllome.answers=/elsewhere.toml").find(src)
    check_copy(found, tmp_path, "--answers")
    assert no_labels.calls == []


@pytest.mark.parametrize("form", ["file://{}", "{}"])
def test_kernel_argument_file_forms(tmp_path, no_labels, form):
    src = tmp_path / "a.toml"
    src.write_bytes(ANSWERS)
    found = make(tmp_path, no_labels, "quiet phyllome.answers=" + form.format(src)).find()
    check_copy(found, tmp_path, "phyllome.answers=")


def test_missing_file_named_on_the_kernel_command_line_is_an_error(tmp_path, no_labels):
    with pytest.raises(UserError, match="does not exist"):
        make(tmp_path, no_labels, "phyllome.answers=/no/such.toml").find()


def test_unsupported_form_is_an_error(tmp_path, no_labels):
    with pytest.raises(UserError, match="unsupported form"):
        make(tmp_path, no_labels, "phyllome.answers=ftp://x/a.toml").find()


def test_hd_form_with_an_unknown_label_is_an_error(tmp_path, no_labels):
    with pytest.raises(UserError, match="no filesystem labelled 'NOPE'"):
        make(tmp_path, no_labels, "phyllome.answers=hd:LABEL=NOPE:/a.toml").find()
    with pytest.raises(UserError, match="expected hd:LABEL=NAME:/path"):
        make(tmp_path, no_labels, "phyllome.answers=hd:sdb1:/a.toml").find()


def test_nothing_found_means_interactive(tmp_path, no_labels):
    assert make(tmp_path, no_labels).find() is None
    assert no_labels.argvs == [("blkid", "-L", "PHYLLOME-ANS")]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path == "/answers.toml":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(ANSWERS)
        elif self.path == "/slow":
            self.server.release.wait(5)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.release.set()
    server.shutdown()
    server.server_close()


def test_http_fetch(tmp_path, no_labels, http_server):
    found = make(tmp_path, no_labels, f"phyllome.answers={http_server}/answers.toml").find()
    check_copy(found, tmp_path, "phyllome.answers=http://127.0.0.1")


def test_http_404_is_a_clear_error(tmp_path, no_labels, http_server):
    with pytest.raises(UserError, match="HTTP 404"):
        make(tmp_path, no_labels, f"phyllome.answers={http_server}/missing.toml").find()


def test_http_timeout_is_a_clear_error(tmp_path, no_labels, http_server):
    with pytest.raises(UserError, match="no answer within 0.5 s|timed out"):
        make(tmp_path, no_labels, f"phyllome.answers={http_server}/slow", http_timeout=0.5).find()


def test_unreachable_server_is_a_clear_error(tmp_path, no_labels):
    with pytest.raises(UserError, match="cannot fetch the answer file"):
        make(tmp_path, no_labels, "phyllome.answers=http://127.0.0.1:9/answers.toml").find()
