"""A whole sandbox install (loop device, real tools) with --json-progress and [report] url pointing at a real
HTTP server on 127.0.0.1: stdout is JSON lines only, the recovery code travels in its own event there and nowhere
else, and the server receives the same events in order, nothing secret, install-started first and
install-finished last. The network-boot test proves the same from two booted machines; this one is the fast check
of the contract (seconds, no QEMU)."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from tests.install.test_install import canary_answers, cli
from tests.loopdev import loop_image, mounted, sh

pytestmark = [pytest.mark.fleet, pytest.mark.root]


def test_json_progress_and_events_from_a_sandbox_install(tmp_path):
    got: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        answers, passphrase, password = canary_answers(tmp_path)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/events"
        answers.write_text(answers.read_text() + f'\n[report]\nurl = "{url}"\n')
        base, log = tmp_path / "sandbox", tmp_path / "install.log"
        run = cli("install", "--sandbox", "--sandbox-dir", str(base), "--answers", str(answers), "--log", str(log),
                  "--json-progress")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]  # every line is JSON: nothing else
    kinds = [e["event"] for e in lines]
    assert kinds[0] == "install-started" and kinds[-1] == "recovery-code" and "install-finished" in kinds, kinds
    code = lines[-1]["code"]
    assert len(code) > 10 and lines[-1]["directory"] == "/var/lib/libvirt/images"
    sent = [e["event"] for e in got]
    assert sent[0] == "install-started" and sent[-1] == "install-finished", sent
    assert [e["seq"] for e in got] == list(range(1, len(got) + 1)) and all(e["dropped"] == 0 for e in got)
    assert [k for k in kinds if k not in ("log", "recovery-code")] == sent  # the same events, in the same order
    every = json.dumps(got) + log.read_text()
    for secret in (code, passphrase, password):
        assert secret not in every
    dry = cli("install", "--sandbox", "--sandbox-dir", str(base), "--answers", str(answers), "--dry-run",
              "--json-progress")
    assert dry.returncode == 0, dry.stderr[-2000:]
    plan = [json.loads(line) for line in dry.stdout.splitlines()][-1]  # a dry run's plan is one event too
    assert plan["event"] == "plan" and "[10/10] finish" in plan["text"] and plan["problems"] == []
    with loop_image(base / "disk.img", "16G") as device:  # the first boot will report to the same URL
        sh("partx", "-u", device)
        with mounted(device + "p3", tmp_path / "root") as root:
            deployment = next((root / "ostree/deploy/phyllome/deploy").glob("*.0"))
            assert (deployment / "etc/phyllome/report.toml").read_text() == f'url = "{url}"\n'
