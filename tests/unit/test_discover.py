from __future__ import annotations

import base64
import http.server
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from phyllome_installer.core.errors import UserError
from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.core.secrets import REDACTOR
from phyllome_installer.discover import Discovery, kernel_argument

ANSWERS = b"version = 1\n# test\n"


@pytest.fixture
def no_labels() -> RecordingRunner:
    """No filesystem carries a label here: blkid -L answers 2, as the real blkid does."""
    runner = RecordingRunner()
    runner.respond(["blkid", "-L"], returncode=2)
    return runner


def make(tmp_path: Path, runner, cmdline: str = "quiet", **kw) -> Discovery:
    if "=http://" in cmdline and ".insecure" not in cmdline:  # the local test server is plain http, unpinned
        cmdline += " phyllome.answers.insecure=1"
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    kw.setdefault("sys_root", tmp_path / "no-sys")  # no identity: the URL as given (tests/unit/test_fleet.py)
    kw.setdefault("proc", tmp_path / "no-proc")
    return Discovery(runner, cmdline=tmp_path / "cmdline", **kw)


def check_copy(found, tmp_path, source_start):
    """The answers stay in memory: no working copy is written anywhere (not in /run, not beside the cmdline)."""
    assert found.source.startswith(source_start)
    assert found.data == ANSWERS
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cmdline", *(
        p.name for p in tmp_path.iterdir() if p.suffix == ".toml")])


def test_kernel_argument_parsing():
    assert kernel_argument("quiet phyllome.answers=/a.toml rw") == "/a.toml"
    assert kernel_argument("phyllome.answers=/a phyllome.answers=/b") == "/b"
    assert kernel_argument('x "phyllome.answers=hd:LABEL=MY KEY:/a.toml"') == "hd:LABEL=MY KEY:/a.toml"
    assert kernel_argument('x phyllome.answers="hd:LABEL=MY KEY:/a.toml" y') == "hd:LABEL=MY KEY:/a.toml"
    assert kernel_argument("phyllome.answers=hd:LABEL=it's:/a.toml") == "hd:LABEL=it's:/a.toml"  # no shell rules
    assert kernel_argument("quiet -- phyllome.answers=/init-only") is None
    assert kernel_argument("phyllome.answersx=1") is None


def test_cli_path_comes_first(tmp_path, no_labels):
    src = tmp_path / "a.toml"
    src.write_bytes(ANSWERS)
    found = make(tmp_path, no_labels, "phyllome.answers=/elsewhere.toml").find(src)
    check_copy(found, tmp_path, "--answers")
    assert found.name == str(src)  # problems name the user's own file
    assert no_labels.calls == []


@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_local_files_are_read_bounded(tmp_path, no_labels, kind):
    path = tmp_path / "a.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge":
        with path.open("wb") as handle:
            handle.truncate((1 << 20) + 1)
    else:
        path = Path("/dev/zero")
    with pytest.raises(UserError, match="not a regular file|larger than"):
        make(tmp_path, no_labels).find(path)
    with pytest.raises(UserError, match="not a regular file|larger than"):
        make(tmp_path, no_labels, f"phyllome.answers={path}").find()


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
    with pytest.raises(UserError, match="no filesystem with LABEL=NOPE was found"):
        make(tmp_path, no_labels, "phyllome.answers=hd:LABEL=NOPE:/a.toml").find()
    with pytest.raises(UserError, match="expected hd:LABEL=NAME:/path"):
        make(tmp_path, no_labels, "phyllome.answers=hd:sdb1:/a.toml").find()


def test_nothing_found_means_interactive(tmp_path, no_labels):
    assert make(tmp_path, no_labels).find() is None
    assert no_labels.argvs == [("blkid", "-L", "PHYLLOME-ANS")]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        self.server.seen.append((self.path, dict(self.headers)))
        if self.path == "/answers.toml":
            self._send(ANSWERS)
        elif self.path == "/private.toml":
            expected = "Basic " + base64.b64encode(b"ops:s3cr3t-pw").decode()
            if self.headers.get("Authorization") == expected:
                self._send(ANSWERS)
            else:
                self.send_error(401)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/answers.toml")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/bad-redirect-"):  # a hostile Location: a port out of range, a broken IPv6 host
            self.send_response(302)
            self.send_header("Location", {"port": "http://h.example:99999/a.toml",
                                          "ipv6": "http://[fd00::1/a.toml"}[self.path.rsplit("-", 1)[1]])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/slow":
            self.server.release.wait(5)
        elif self.path == "/trickle":  # a byte at a time, forever: only a deadline on the whole transfer ends it
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(200):  # bounded: the server stops by itself
                if self.server.release.wait(0.2):
                    break
                self.wfile.write(b"#")
                self.wfile.flush()
        elif self.path == "/truncated":  # promises more than it sends, then closes
            self.send_response(200)
            self.send_header("Content-Length", str(len(ANSWERS) + 100))
            self.end_headers()
            self.wfile.write(ANSWERS)
            self.close_connection = True
        elif self.path == "/huge":
            self.send_response(200)
            self.end_headers()  # no Content-Length: the cap must still hold
            self.close_connection = True
            for _ in range(40):
                self.wfile.write(b"#" * 65536)
        else:
            self.send_error(404)

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.release = threading.Event()
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def test_http_fetch(tmp_path, no_labels, http_server):
    found = make(tmp_path, no_labels, f"phyllome.answers={http_server.url}/answers.toml").find()
    check_copy(found, tmp_path, "phyllome.answers=http://127.0.0.1")


def test_http_404_is_a_clear_error(tmp_path, no_labels, http_server):
    with pytest.raises(UserError, match="HTTP 404"):
        make(tmp_path, no_labels, f"phyllome.answers={http_server.url}/missing.toml").find()


def test_http_timeout_is_a_clear_error(tmp_path, no_labels, http_server):
    with pytest.raises(UserError, match="no complete answer within 0.5 s"):
        make(tmp_path, no_labels, f"phyllome.answers={http_server.url}/slow", http_timeout=0.5).find()


def test_unreachable_server_is_a_clear_error(tmp_path, no_labels):
    with pytest.raises(UserError, match="cannot fetch the answer file"):
        make(tmp_path, no_labels, "phyllome.answers=http://127.0.0.1:9/answers.toml").find()


def test_a_trickling_server_is_cut_off_by_the_deadline(tmp_path, no_labels, http_server):
    started = time.monotonic()
    with pytest.raises(UserError, match="no complete answer within 1 s"):
        make(tmp_path, no_labels, f"phyllome.answers={http_server.url}/trickle", http_timeout=1).find()
    assert time.monotonic() - started < 4  # the server would go on for 40 s


def test_a_body_cut_short_of_its_content_length_is_an_error(tmp_path, no_labels, http_server):
    with pytest.raises(UserError, match=f"cut short: {len(ANSWERS)} of {len(ANSWERS) + 100} bytes"):
        make(tmp_path, no_labels, f"phyllome.answers={http_server.url}/truncated").find()


def test_a_body_without_length_is_capped(tmp_path, no_labels, http_server):
    with pytest.raises(UserError, match="larger than 1048576 bytes"):
        make(tmp_path, no_labels, f"phyllome.answers={http_server.url}/huge").find()


def test_redirects_are_followed(tmp_path, no_labels, http_server):
    found = make(tmp_path, no_labels, f"phyllome.answers={http_server.url}/redirect").find()
    assert found.data == ANSWERS


def test_credentials_in_the_url_are_sent_and_never_shown(tmp_path, no_labels, http_server, caplog):
    caplog.set_level(logging.DEBUG, logger="phyllome")
    url = http_server.url.replace("http://", "http://ops:s3cr3t-pw@")
    found = make(tmp_path, no_labels, f"phyllome.answers={url}/private.toml").find()
    assert found.data == ANSWERS
    assert "s3cr3t-pw" not in found.source and "ops" not in found.source and "***@" in found.source
    assert "s3cr3t-pw" not in caplog.text
    with pytest.raises(UserError) as error:
        make(tmp_path, no_labels, f"phyllome.answers={url}/missing.toml").find()
    assert "s3cr3t-pw" not in str(error.value) and "***@127.0.0.1" in str(error.value)
    with pytest.raises(UserError) as error:  # an error from the connection itself
        make(tmp_path, no_labels, "phyllome.answers=http://ops:s3cr3t-pw@127.0.0.1:9/a.toml").find()
    assert "s3cr3t-pw" not in str(error.value)
    assert REDACTOR.redact("x s3cr3t-pw y") != "x s3cr3t-pw y"


def test_identity_headers_are_sent(tmp_path, no_labels, http_server):
    make(tmp_path, no_labels, f"phyllome.answers={http_server.url}/answers.toml").find()
    assert http_server.seen[-1][1]["User-Agent"] == "phyllome-install"


@pytest.mark.parametrize("value", [
    "https://ops:pa#ss@h.example/a.toml", "https://ops:pa?ss@h.example/a.toml", "https://ops:pa/ss@h.example/a.toml",
    "https://h.example:99999/a.toml", "https://h.example:0/a.toml", "https://[fd00::1/a.toml",
    "https://[zz]/a.toml", "https://ops:pa ss@h.example/a.toml"])
def test_a_malformed_url_is_a_user_error_that_shows_no_password(tmp_path, no_labels, value, caplog):
    caplog.set_level(logging.DEBUG, logger="phyllome")
    with pytest.raises(UserError) as error:
        make(tmp_path, no_labels, f'"phyllome.answers={value}"').find()
    assert "expected http(s)://" in str(error.value)
    for secret in ("pa#ss", "pa?ss", "pa/ss", "pa ss"):
        assert secret not in str(error.value) + caplog.text
    assert no_labels.calls == []  # refused before anything ran


@pytest.mark.parametrize("kind", ["port", "ipv6"])
def test_a_redirect_to_a_malformed_url_is_a_user_error(tmp_path, no_labels, http_server, kind):
    with pytest.raises(UserError, match="is not an http:// or https:// URL in the form"):
        make(tmp_path, no_labels, f"phyllome.answers={http_server.url}/bad-redirect-{kind}").find()


class StandInMount(RecordingRunner):
    """A stand-in for mount(8) in the unit tier (no loop device here): ``mount DEV DIR`` copies the key's files and
    links (a link keeps its target) into DIR; ``umount DIR`` empties it."""

    def __init__(self, key: Path) -> None:
        super().__init__()
        self.key = key
        self.respond(["blkid", "-L", "KEY"], stdout="/dev/fake1\n")

    def run(self, argv, **kw):
        result = super().run(argv, **kw)
        target = Path(argv[-1])
        if argv[0] == "mount":
            for entry in self.key.iterdir():
                if entry.is_symlink():
                    os.symlink(os.readlink(entry), target / entry.name)
                else:
                    (target / entry.name).write_bytes(entry.read_bytes())
        elif argv[0] == "umount":
            for entry in target.iterdir():
                entry.unlink()
        return result


def test_a_link_that_leads_off_the_answer_device_is_refused_with_a_stand_in_mount(tmp_path):
    outside = tmp_path / "outside.toml"
    outside.write_text("version = 1\n# not from the key\n")
    key = tmp_path / "key"
    key.mkdir()
    (key / "answers.toml").symlink_to(outside)  # absolute: resolved on this machine, not on the key
    (key / "own.toml").write_bytes(ANSWERS)
    runner = StandInMount(key)
    with pytest.raises(UserError, match="is a link that leads off that filesystem; refused"):
        make(tmp_path, runner, "phyllome.answers=hd:LABEL=KEY:/answers.toml").find()
    found = make(tmp_path, StandInMount(key), "phyllome.answers=hd:LABEL=KEY:/own.toml").find()
    assert found.data == ANSWERS and found.source.endswith("(/dev/fake1)")
    assert [argv[0] for argv in runner.argvs] == ["blkid", "mount", "umount"]
