"""Where the answer file comes from, in this order:

1. ``--answers PATH`` on the command line;
2. the kernel argument ``phyllome.answers=`` (from ``/proc/cmdline``): ``file:///path``, ``/path``,
   ``hd:LABEL=NAME:/path`` (that filesystem is mounted read-only, the file copied, the filesystem unmounted),
   ``http://...`` or ``https://...`` (with a timeout);
3. a filesystem labelled ``PHYLLOME-ANS`` holding ``/answers.toml``.

The file found is copied to ``/run/phyllome/answers.toml`` (mode 0600) so that the rest of the install reads one
place. No source at all means an interactive install; a source that is named but unusable is an error.
"""

from __future__ import annotations

import logging
import os
import shlex
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .core.errors import UserError
from .core.runner import Runner

log = logging.getLogger("phyllome.discover")

DEST = Path("/run/phyllome/answers.toml")
CMDLINE = Path("/proc/cmdline")
LABEL = "PHYLLOME-ANS"
KARG = "phyllome.answers"
MAX_BYTES = 1 << 20
HTTP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Found:
    """An answer file: where it came from (for the log and the summary) and its local copy."""

    source: str
    path: Path


def kernel_argument(cmdline: str, name: str = KARG) -> str | None:
    """The value of ``name=`` on a kernel command line (the last one wins, as in the kernel)."""
    try:
        words = shlex.split(cmdline)
    except ValueError:
        words = cmdline.split()
    value = None
    for word in words:
        if word == "--":  # what follows is for init, not for us
            break
        if word.startswith(name + "="):
            value = word[len(name) + 1 :]
    return value


def _write_private(data: bytes, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".answers-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _read_local(path: Path, source: str) -> bytes:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UserError(f"{source}: {path} is larger than {MAX_BYTES} bytes; that is not an answer file")
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{source}: {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"{source}: {path} is a directory, not an answer file") from None
    except PermissionError:
        raise UserError(f"{source}: {path} cannot be read (permission denied)") from None


def _fetch(url: str, timeout: float) -> bytes:
    source = f"{KARG}={url}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked by caller)
            data = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise UserError(f"{source}: the server answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise UserError(f"{source}: cannot fetch the answer file: {exc.reason}",
                        hint="check the network and the URL; the install has not started") from None
    except TimeoutError:
        raise UserError(f"{source}: no answer within {timeout:g} s") from None
    if len(data) > MAX_BYTES:
        raise UserError(f"{source}: larger than {MAX_BYTES} bytes; that is not an answer file")
    return data


class Discovery:
    """Finds the answer file. Every side effect is injected: the runner, the cmdline file, the destination."""

    def __init__(self, runner: Runner, *, cmdline: Path = CMDLINE, dest: Path = DEST,
                 http_timeout: float = HTTP_TIMEOUT, label: str = LABEL) -> None:
        self.runner = runner
        self.cmdline = cmdline
        self.dest = dest
        self.http_timeout = http_timeout
        self.label = label

    def find(self, cli_path: Path | None = None) -> Found | None:
        if cli_path is not None:
            return self._found(f"--answers {cli_path}", _read_local(cli_path, "--answers"))
        try:
            cmdline = self.cmdline.read_text()
        except OSError:
            cmdline = ""
        value = kernel_argument(cmdline)
        if value is not None:
            return self._from_kernel_argument(value)
        device = self._device_with_label(self.label)
        if device is not None:
            source = f"partition labelled {self.label} ({device})"
            return self._found(source, self._read_from_device(device, "/answers.toml", source))
        log.info("no answer file: --answers not given, no %s= kernel argument, no %s partition", KARG, self.label)
        return None

    def _found(self, source: str, data: bytes) -> Found:
        path = _write_private(data, self.dest)
        log.info("answer file from %s copied to %s", source, path)
        return Found(source, path)

    def _from_kernel_argument(self, value: str) -> Found:
        source = f"{KARG}={value}"
        if value.startswith(("http://", "https://")):
            return self._found(source, _fetch(value, self.http_timeout))
        if value.startswith("file://"):
            return self._found(source, _read_local(Path(value[len("file://"):]), source))
        if value.startswith("/"):
            return self._found(source, _read_local(Path(value), source))
        if value.startswith("hd:"):
            spec, sep, inner = value[3:].partition(":")
            if not spec.startswith("LABEL=") or not sep or not inner.startswith("/"):
                raise UserError(f"{source}: expected hd:LABEL=NAME:/path/to/answers.toml")
            label = spec[len("LABEL="):]
            device = self._device_with_label(label)
            if device is None:
                raise UserError(f"{source}: no filesystem labelled {label!r} was found")
            return self._found(source, self._read_from_device(device, inner, source))
        raise UserError(f"{source}: unsupported form",
                        hint="use file:///path, /path, hd:LABEL=NAME:/path, http://... or https://...")

    def _device_with_label(self, label: str) -> str | None:
        result = self.runner.run(["blkid", "-L", label], check=False)
        device = result.stdout.strip().splitlines()[0] if result.ok and result.stdout.strip() else None
        return device

    def _read_from_device(self, device: str, inner: str, source: str) -> bytes:
        mountpoint = tempfile.mkdtemp(prefix="phyllome-answers-")
        try:
            self.runner.run(["mount", "-o", "ro,nosuid,nodev,noexec", device, mountpoint])
            try:
                return _read_local(Path(mountpoint) / inner.lstrip("/"), source)
            finally:
                self.runner.run(["umount", mountpoint])
        finally:
            if not os.path.ismount(mountpoint):
                os.rmdir(mountpoint)
