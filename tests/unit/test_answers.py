from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phyllome_installer import answers
from phyllome_installer.cli import install_main
from phyllome_installer.core.secrets import Redactor

DATA = Path(__file__).resolve().parents[1] / "data" / "answers"
BAD = sorted((DATA / "bad").glob("*.toml"))
GOOD = sorted((DATA / "good").glob("*.toml"))
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "examples" / "answers.toml"


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path} must start with '# expect: :LINE:COL: key: message'"
    return first[len("# expect: "):]


def test_the_corpus_covers_at_least_thirty_cases():
    assert len(BAD) >= 30


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_file_exits_2_with_file_line_and_the_expected_message(path, capsys, tmp_path):
    code = install_main(["validate", str(path), "--log", str(tmp_path / "log")])
    out = capsys.readouterr()
    assert code == 2
    assert any(line.startswith(f"{path}{expected(path)}") for line in out.err.splitlines()), out.err
    assert "Traceback" not in out.err + out.out
    assert out.out == ""


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_files_are_valid(path, capsys, tmp_path):
    assert install_main(["validate", str(path), "--log", str(tmp_path / "log")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: valid: install ")


@pytest.mark.skipif(not REFERENCE.exists(), reason="../shared/examples/answers.toml is not beside this checkout")
def test_the_reference_answer_file_validates_through_the_real_command(tmp_path):
    out = subprocess.run([sys.executable, "-m", "phyllome_installer.cli", "validate", str(REFERENCE),
                          "--log", str(tmp_path / "log")], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "valid: install local payload /run/install/repo phyllome/x86_64/stable" in out.stdout


def test_reference_keys_have_their_meaning():
    config = answers.load(DATA / "good" / "reference.toml", redactor=None).config
    assert config is not None
    assert config.storage.disk == "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T123456"
    assert config.storage.wipe == "S64ANS0T123456" and config.storage.root_fs == "f2fs"
    assert config.storage.encryption.enabled and config.storage.encryption.protect == ["/var/lib/libvirt/images"]
    assert config.payload.kind == "local" and config.payload.ref == "phyllome/x86_64/stable"
    assert (config.host.hostname, config.host.keyboard, config.host.timezone) == ("phyllome", "us", "Europe/Paris")
    assert config.host.kernel_args == ["quiet"]
    assert config.users[0].groups == ["wheel", "libvirt"] and config.post.action == "reboot"


def test_all_problems_are_reported_at_once():
    text = (DATA / "good" / "minimal.toml").read_text()
    text = text.replace('passphrase = "correct horse battery"', 'passphrase = "short"\nprotect = ["rel"]')
    text = text.replace('name = "admin"', 'name = "Admin"')
    result = answers.parse(text, "f.toml", redactor=None)
    keys = [p.key for p in result.problems]
    assert keys == ["storage.encryption.passphrase", "storage.encryption.protect[0]", "users[0].name"]


def test_secrets_are_registered_and_hidden_from_repr():
    redactor = Redactor()
    config = answers.load(DATA / "good" / "minimal.toml", redactor=redactor).config
    assert "correct horse battery" not in repr(config)
    assert redactor.redact("x correct horse battery a long enough password") == "x [REDACTED] [REDACTED]"


def test_secrets_of_an_invalid_file_are_registered_too():
    redactor = Redactor()
    text = (DATA / "good" / "minimal.toml").read_text().replace("version = 1", "version = 7")
    assert not answers.parse(text, redactor=redactor).ok
    assert redactor.redact("a long enough password") == "[REDACTED]"


def test_interactive_mode_does_not_need_wipe_consent():
    text = (DATA / "good" / "minimal.toml").read_text().replace('wipe = "/dev/vda"\n', "")
    assert not answers.parse(text, redactor=None).ok
    assert answers.parse(text, unattended=False, redactor=None).ok


@pytest.mark.parametrize(("wipe", "disk", "ok"), [
    ("/dev/vda", "/dev/vda", True),
    ("vda", "/dev/vda", True),
    # offline, a serial is not consent: only the probed disk's whole serial is (tests/unit/test_consent_names.py)
    ("S64ANS0T123456", "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T123456", False),
    ("nvme-Samsung_SSD_980_1TB_S64ANS0T123456", "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T123456", True),
    ("123456", "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T123456", False),
    ("S64ANS0T123456", "/dev/nvme0n1", False),
    ("", "/dev/vda", False),
])
def test_wipe_consent(wipe, disk, ok):
    assert answers.wipe_names_disk(wipe, disk) is ok


@pytest.mark.parametrize(("wipe", "disk", "conflict"), [
    ("S64ANS0T123456", "/dev/nvme0n1", False),  # a serial: checked against the probed disk, not offline
    ("/dev/sdb", "/dev/sda", True),
    ("sdb", "/dev/sda", True),
    ("/dev/sda", "/dev/disk/by-id/ata-X_123", False),  # may well be the same disk
    ("/dev/disk/by-id/ata-Y_9", "/dev/disk/by-id/ata-X_123", True),
    ("456", "/dev/disk/by-id/ata-X_123", True),
    ("123", "/dev/disk/by-id/ata-X_123", False),
    ("S1", "/dev/disk/by-id/wwn-0x5002538e", False),  # wwn names carry no serial
    ("1", "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T123456_1", True),  # the namespace, not a serial
    ("S64ANS0T123456", "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T123456_1", False),
    ("3456", "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T123456_1", True),  # a fragment
    ("0:0", "/dev/disk/by-id/usb-Kingston_DT_E0D55EA574E1-0:0", True),
    ("E0D55EA574E1", "/dev/disk/by-id/usb-Kingston_DT_E0D55EA574E1-0:0", False),
    ("QM00001", "/dev/disk/by-id/virtio-QM00001", False),
])
def test_offline_wipe_conflicts(wipe, disk, conflict):
    assert answers.wipe_conflicts(wipe, disk) is conflict


@pytest.mark.parametrize(("text", "size"), [("600MiB", 600 * 2**20), ("1.5TB", 1_500_000_000_000), ("1 GiB", 2**30),
                                            ("512B", 512), ("2gib", 2 * 2**30)])
def test_sizes(text, size):
    assert answers.parse_size(text) == size


def test_unreadable_and_binary_files_are_problems_not_tracebacks(tmp_path):
    missing = answers.load(tmp_path / "nope.toml")
    assert [str(p) for p in missing.problems] == [f"{tmp_path}/nope.toml:1:1: cannot read the answer file: "
                                                  "it does not exist"]
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"version = 1\n\xff\xfe\n")
    assert str(answers.load(binary).problems[0]).endswith(":2:1: the answer file is not UTF-8 text")


def test_fifos_devices_directories_and_huge_files_are_refused_without_reading_them(tmp_path):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # nobody ever writes to it: a blocking read would hang the test
    huge = tmp_path / "huge.toml"
    with huge.open("wb") as handle:
        handle.truncate(answers.MAX_ANSWER_BYTES + 1)
    cases = {fifo: "is a FIFO, not a regular file", Path("/dev/zero"): "is a character device, not a regular file",
             tmp_path: "is a directory, not a regular file", huge: f"is larger than {answers.MAX_ANSWER_BYTES} bytes"}
    for path, reason in cases.items():
        assert [str(p) for p in answers.load(path).problems] == [f"{path}:1:1: cannot read the answer file: it "
                                                                 f"{reason}"]
    loop = tmp_path / "loop.toml"
    loop.symlink_to(loop)
    assert "symbolic link loop" in str(answers.load(loop).problems[0])


def test_schema_command_prints_a_documented_json_schema(capsys, tmp_path):
    assert install_main(["schema", "--log", str(tmp_path / "log")]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"].startswith("Phyllome OS installer answer file")
    undocumented = [
        f"{name}.{prop}"
        for name, definition in [("InstallConfig", schema), *schema["$defs"].items()]
        for prop, spec in definition.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert undocumented == []


GOOD_TEXT = (DATA / "good" / "reference.toml").read_text()
toml_values = st.one_of(
    st.integers(-3, 10**12).map(str), st.booleans().map(lambda b: str(b).lower()),
    st.text(max_size=20).map(json.dumps), st.just("[]"), st.just("{}"), st.just('["a", 1]'),
    st.just("1979-05-27T07:32:00Z"), st.just("3.14"), st.just('""'), st.just("[[]]"),
)


@st.composite
def mutated(draw):
    lines = GOOD_TEXT.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "dup", "value", "junk", "key", "truncate"]))
        line = lines[index]
        if action == "drop":
            del lines[index]
        elif action == "dup":
            lines.insert(index, line)
        elif action == "value" and "=" in line:
            lines[index] = line.split("=", 1)[0] + "= " + draw(toml_values)
        elif action == "junk":
            lines.insert(index, draw(st.text(max_size=30)))
        elif action == "key" and "=" in line:
            lines[index] = draw(st.from_regex(r"[a-z_]{1,12}", fullmatch=True)) + " =" + line.split("=", 1)[1]
        elif action == "truncate":
            lines = lines[:index]
        if not lines:
            lines = [""]
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_of_the_good_file_never_raise(text):
    result = answers.parse(text, "m.toml", redactor=None)
    assert result.ok or result.problems
    for problem in result.problems:
        assert problem.line >= 1 and problem.column >= 1 and problem.message
        assert str(problem).startswith(f"m.toml:{problem.line}:{problem.column}: ")


REMOVED = re.compile(r'^# (\w+) = "\.\.\."  \(removed: secrets are never written\)$', re.MULTILINE)


def restore_secrets(text: str, secrets: list[str]) -> str:
    """Put the secrets back where the saved file marks them, in order."""
    values = iter(secrets)
    return REMOVED.sub(lambda m: f"{m.group(1)} = {json.dumps(next(values))}", text)


def test_saved_answers_have_no_secret_and_are_read_only(tmp_path):
    original = answers.load(DATA / "good" / "reference.toml", redactor=None).config
    saved = answers.save(original, tmp_path / "saved.toml")
    text = saved.read_text()
    assert oct(os.stat(saved).st_mode & 0o777) == "0o400"
    assert text.startswith("# Phyllome OS installer answer file, written by phyllome-install.\n# Secrets were removed")
    for secret in original.secrets():
        assert secret not in text
    assert len(REMOVED.findall(text)) == 2  # the passphrase and admin's password
    reread = answers.parse(text, "saved.toml", redactor=None)
    assert [p.key for p in reread.problems] == ["storage.encryption"]  # only the missing passphrase
    answers.save(original, saved)  # replacing a read-only file works
    assert saved.read_text() == text


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_saved_answers_round_trip_once_the_secrets_are_added_back(path):
    original = answers.load(path, redactor=None).config
    text = answers.dumps(original)
    assert len(REMOVED.findall(text)) == len(original.secrets())
    restored = answers.parse(restore_secrets(text, original.secrets()), redactor=None)
    assert restored.problems == [] and restored.config == original
