"""The fleet's contract, the installer's side: the identity table (tests/data/bootargs/identity.json, which
tests/dracut/test_identity.py runs against the initramfs module), facts, the TLS key pin against a real TLS server
(right, wrong, missing), the facts POST, and the refusal of a file served for another machine."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from phyllome_installer import fleet
from phyllome_installer.bootanswers import check_machine
from phyllome_installer.core.errors import UserError
from phyllome_installer.discover import Found, fetch

IDENTITY = json.loads((Path(__file__).resolve().parents[1] / "data" / "bootargs" / "identity.json").read_text())


def machine_tree(root: Path, case: dict) -> tuple[Path, Path]:
    sys_root, proc = root / "sys", root / "proc"
    for name, text in case["files"].items():
        path = sys_root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "sys" / "kernel" / "hostname").write_text(case["hostname"] + "\n")
    return sys_root, proc


@pytest.mark.parametrize("case", IDENTITY, ids=[c["note"] for c in IDENTITY])
def test_the_identity_table(case, tmp_path):
    sys_root, proc = machine_tree(tmp_path, case)
    assert fleet.answer_url(case["url"], fleet.identity(sys_root, proc)) == case["expect"]


def test_facts_hold_the_identity_nics_and_disks(tmp_path):
    sys_root, proc = machine_tree(tmp_path, IDENTITY[0])
    (sys_root / "block" / "vda" / "device").mkdir(parents=True)
    (sys_root / "block" / "vda" / "size").write_text("33554432\n")
    (sys_root / "block" / "loop0").mkdir(parents=True)
    (proc / "cpuinfo").write_text("flags\t\t: fpu vmx hypervisor\n")
    facts = fleet.facts(sys_root, proc)
    assert facts["identity"]["serial"] == "FLEET-A"
    assert facts["network_interfaces"] == [{"link": "ens3", "mac": "52-54-00-aa-00-01", "up": True}]
    assert facts["disks"] == [{"name": "vda", "size": 16 << 30, "model": "", "serial": ""}]
    assert facts["virtualization"] == {"vmx": True, "svm": False, "in_a_vm": True}
    json.dumps(facts)


# ------------------------------------------------------------------------------------------- a real TLS server
@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """An https server on 127.0.0.1 with a self-signed key (openssl): GET answers, POST echoes the facts,
    /ask-facts answers a GET with 428."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=fleet.test"],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], check=True,
                         capture_output=True).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=der, check=True,
                          capture_output=True).stdout
    pin = "sha256//" + base64.b64encode(hashlib.sha256(spki).digest()).decode()
    seen: list[tuple[str, str, bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802
            seen.append(("GET", self.path, b""))
            if self.path.startswith("/ask-facts"):
                self._answer(428, b"")
            else:
                self._answer(200, b"version = 1\n")

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(("POST", self.path, body))
            self._answer(200, b"# for " + json.loads(body)["identity"].get("serial", "").encode() + b"\n")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", pin, cert, seen
    httpd.shutdown()
    httpd.server_close()


def test_the_pin_is_the_key_curl_pins(tls_server):
    _, pin, cert, _ = tls_server
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert fleet.spki_sha256(der) == pin


def test_the_right_pin_is_fetched_without_a_public_ca(tls_server):
    url, pin, _, _ = tls_server
    assert fetch(url + "/answers.toml", 10, pubkeys=(pin,)) == b"version = 1\n"
    assert fetch(url + "/answers.toml", 10, pubkeys=("sha256//" + "A" * 43 + "=", pin)) == b"version = 1\n"


def test_a_wrong_pin_is_refused_before_the_request(tls_server):
    url, pin, _, seen = tls_server
    before = len(seen)
    with pytest.raises(UserError, match=r"refused: the server's TLS key is sha256//.*pins sha256//AAAA"):
        fetch(url + "/answers.toml", 10, pubkeys=("sha256//" + "A" * 43 + "=",))
    assert len(seen) == before  # not a byte of the request was sent


def test_no_pin_means_the_ca_check(tls_server):
    url, _, _, _ = tls_server
    with pytest.raises(UserError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        fetch(url + "/answers.toml", 10)


def test_the_server_asks_for_the_facts_with_428(tls_server, tmp_path):
    url, pin, _, seen = tls_server
    sys_root, proc = machine_tree(tmp_path, IDENTITY[0])
    body = fetch(url + "/ask-facts", 10, pubkeys=(pin,),
                 facts=lambda: json.dumps(fleet.facts(sys_root, proc)).encode())
    assert body == b"# for FLEET-A\n"
    assert [(m, p) for m, p, _ in seen[-2:]] == [("GET", "/ask-facts"), ("POST", "/ask-facts")]
    assert json.loads(seen[-1][2])["network_interfaces"][0]["mac"] == "52-54-00-aa-00-01"


def test_a_file_for_another_machine_is_refused(tmp_path):
    who = fleet.Identity(uuid="4c4c4544-0042", mac="52-54-00-aa-00-01", serial="FLEET-A")
    mine = Found("phyllome.answers=https://fleet/g?***", b'version = 1\n[report.machine]\nserial = "FLEET-A"\n', "x")
    check_machine(mine, who, ["52-54-00-aa-00-01"])
    other = Found("phyllome.answers=https://fleet/g?***", b'version = 1\n[report.machine]\nserial = "FLEET-B"\n', "x")
    with pytest.raises(UserError, match="is for the machine with serial FLEET-B; this machine's serial is FLEET-A"):
        check_machine(other, who, ["52-54-00-aa-00-01"])
    by_mac = Found("s", b'[report.machine]\nmac = "52:54:00:AA:00:02"\n', "x")
    with pytest.raises(UserError, match="mac 52:54:00:AA:00:02"):
        check_machine(by_mac, who, ["52-54-00-aa-00-01"])
    check_machine(Found("s", b"not toml [", "x"), who, [])  # the parser names that problem
