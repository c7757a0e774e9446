"""Build Phyllome OS's bootable payload: a Debian 12 root in the ostree layout, committed to an archive repository.

    python -m payload.build            # build (or find in the cache) and print the commit, size and time
    python -m payload.build --next     # also a second version of the same payload (for the upgrade test)
    python -m payload.build --print-repo   # only the repository path (building it when needed)

Two layers, each cached by its own inputs under `$PHYLLOME_PAYLOAD_CACHE` (default /var/cache/phyllome-payload):

* the base (`base-<key>/repo`, ref `phyllome/x86_64/base`, minutes): mmdebstrap makes the root from Debian's
  packages (`packages.txt`: the Debian kernel, systemd, dracut with ostree's module, libvirt, QEMU, swtpm, OVMF,
  fscrypt, f2fs-tools, python3); `customize.sh` adds a venv under /usr/lib/phyllome holding the project's Python
  dependencies (wheels built here) and builds the initramfs; the root is converted to the ostree layout here and
  committed. Key: these three files and the `dependencies` of pyproject.toml.
* the project (`<base key>-<key>/repo`, ref `phyllome/x86_64/host`, seconds): this project's packages copied into
  the venv (byte-compiled with hash-checked .pyc: a deployment's files all have mtime 0), its commands in /usr/bin,
  its units installed and enabled (the hook: `phyllome_installer/data/systemd/`), committed on top of the base
  (`--tree=ref=` + `--tree=dir=`) in a repository whose objects are hard links to the base's. Key: every file
  of the project that goes into the payload.

A build whose inputs did not change is a cache hit; a change of the project's source rebuilds only the second
layer. Downloaded packages are kept in `$PHYLLOME_PAYLOAD_CACHE/debs` (shared by every key).

The Debian mirror is the build machine's (`/etc/apt/sources.list.d/debian.sources` or `/etc/apt/sources.list`);
the key does not follow the mirror, so a cached payload keeps the packages of the day it was built: remove the
cache directory to pick up Debian's updates.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from phyllome_installer import units

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = Path(os.environ.get("PHYLLOME_PAYLOAD_CACHE", "/var/cache/phyllome-payload"))
SUITE = "bookworm"
REF = "phyllome/x86_64/host"
BASE_REF = "phyllome/x86_64/base"
VENV = "usr/lib/phyllome/venv"
COMMANDS = {"phyllome-install": "install_main", "phyllome-firstboot": "firstboot_main"}
NEXT_REF = f"{REF}-next"
"""The second version: a child of the ref's commit with one file changed; the upgrade test moves REF to it."""
VERSION_FILE = "usr/lib/phyllome/payload-version"
PROJECT = ("phyllome_installer", "storage", "firstboot", "screens")
WHEEL_FILES = ("pyproject.toml", "README.md")
"""Besides PROJECT's folders, what the project's wheel is built from."""
# Kept out of the root: documentation, manual pages, translations (the payload is an appliance, not a workstation).
DPKG_EXCLUDES = ("/usr/share/man/*", "/usr/share/info/*", "/usr/share/doc/*", "/usr/share/locale/*",
                 "/usr/share/lintian/*", "/usr/share/linda/*", "/usr/share/gtk-doc/*", "/usr/share/help/*")
DPKG_INCLUDES = ("/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias")
# Top-level directories that live in /var on an ostree host (as rpm-ostree composes them).
VAR_LINKS = {"home": "var/home", "root": "var/roothome", "opt": "var/opt", "srv": "var/srv", "mnt": "var/mnt",
             "media": "run/media", "usr/local": "../var/usrlocal"}


def log(message: str) -> None:
    print(f"payload: {message}", flush=True)


def run(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kw)


def packages() -> list[str]:
    lines = (HERE / "packages.txt").read_text().splitlines()
    return [name for line in lines if (name := line.split("#", 1)[0].strip())]


def dependencies() -> list[str]:
    """The project's Python dependencies (pyproject.toml's [project] dependencies), installed into the base."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def project_files() -> list[Path]:
    """The project's files that go into the payload."""
    files = []
    for top in PROJECT:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path)
    return files


def build_wheel(out: Path) -> Path:
    """The project's wheel, built from a copy of its files (the checkout gets no build/ or egg-info): what the
    payload and the live medium install (never its source folders copied)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for path in [*(ROOT / name for name in WHEEL_FILES), *project_files()]:
            target = src / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        run(sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
            "--no-build-isolation", "--wheel-dir", str(out), str(src), stdout=subprocess.DEVNULL)
    return next(out.glob("phyllome_installer-*.whl"))


def _digest(paths: list[Path], extra: str) -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def base_key() -> str:
    return _digest([HERE / "build.py", HERE / "customize.sh", HERE / "packages.txt"],
                   SUITE + "\0" + "\0".join(dependencies()))


def project_key() -> str:
    return _digest([*(ROOT / name for name in WHEEL_FILES), *project_files()], "")


def cache_key() -> str:
    return f"{base_key()}-{project_key()}"


@dataclass
class Payload:
    repo: Path
    ref: str
    commit: str
    kernel: str
    size: int
    """Bytes of the archive repository on disk."""
    seconds: float
    """How long the build took (the cold build's, also on a cache hit)."""
    cached: bool

    def describe(self) -> str:
        how = "cache hit" if self.cached else "built"
        return (f"{how}: {self.repo} {self.ref} = {self.commit[:12]} (kernel {self.kernel}), "
                f"repository {self.size / 2**20:.0f} MiB, build {self.seconds:.0f} s")


def du(path: Path) -> int:
    return int(run("du", "-sb", str(path), capture_output=True, text=True).stdout.split()[0])


def mirror_sources() -> list[str]:
    """The build machine's Debian sources, handed to mmdebstrap (it reads deb822 and one-line files)."""
    sources = [p for p in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
               if p.is_file() and p.read_text().strip()]
    return [str(p) for p in sources] or ["http://deb.debian.org/debian"]


def build_wheels(out: Path) -> None:
    """The project's Python dependencies as wheels, built here (same Debian 12, same Python), and the
    requirements file customize.sh installs from them."""
    out.mkdir(parents=True)
    requirements = out / "requirements.txt"
    requirements.write_text("\n".join(dependencies()) + "\n")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--wheel-dir", str(out),
        "-r", str(requirements), stdout=subprocess.DEVNULL)


def mmdebstrap(rootfs: Path, wheels: Path, debs: Path) -> None:
    debs.mkdir(parents=True, exist_ok=True)
    argv = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory", "--skip=download/empty",
            "--aptopt=APT::Install-Recommends \"false\"", f"--include={','.join(packages())}"]
    argv += [f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES]
    argv += [f"--dpkgopt=path-include={p}" for p in DPKG_INCLUDES]
    argv += [
        # Downloaded .debs are kept between builds.
        f'--setup-hook=mkdir -p "$1"/var/cache/apt/archives && cp -a {debs}/. "$1"/var/cache/apt/archives/',
        # No initramfs while packages are installed (the kernel's hook would build a host-only one without
        # ostree's module): dracut is diverted away until customize.sh builds the one the payload ships.
        "--essential-hook=chroot \"$1\" dpkg-divert --local --rename "
        "--divert /usr/bin/dracut.phyllome-build --add /usr/bin/dracut",
        f'--customize-hook=cp -a "$1"/var/cache/apt/archives/. {debs}/ && rm -f {debs}/lock && rm -rf {debs}/partial',
        f'--customize-hook={HERE / "customize.sh"} "$1" {wheels}',
        SUITE, str(rootfs), *mirror_sources()]
    run(*argv, stdin=subprocess.DEVNULL)


def write_autovar(rootfs: Path) -> None:
    """/var is empty in an ostree commit: what the packages put there is recreated at boot by systemd-tmpfiles.

    Directories and symbolic links become `d` and `L` lines; files are moved to /usr/share/factory/var and copied
    back (`C`) when missing, as rpm-ostree's compose does.
    """
    var = rootfs / "var"
    factory = rootfs / "usr/share/factory/var"
    lines = ["# Written by payload/build.py: what Debian's packages installed in /var (empty in the commit)."]
    for path in sorted(var.rglob("*")):
        rel = path.relative_to(rootfs)
        if rel.parts[:3] in (("var", "cache", "apt"), ("var", "lib", "apt")) or rel.parts[:2] == ("var", "log"):
            continue
        st = path.lstat()
        owner = f"{st.st_uid} {st.st_gid}"
        if path.is_symlink():
            lines.append(f"L /{rel} - - - - {os.readlink(path)}")
        elif path.is_dir():
            lines.append(f"d /{rel} {st.st_mode & 0o7777:04o} {owner} -")
        elif path.is_file():
            target = factory / rel.relative_to("var")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            os.chown(target, st.st_uid, st.st_gid)
            lines.append(f"C /{rel} - - - - /usr/share/factory/{rel}")
    for link, target in VAR_LINKS.items():
        if target.startswith(("var/", "../var/")):
            mode = "0700" if link == "root" else "0755"
            lines.append(f"d /var/{target.split('var/', 1)[1]} {mode} root root -")
    (rootfs / "usr/lib/tmpfiles.d/phyllome-var.conf").write_text("\n".join(lines) + "\n")


def to_ostree_layout(rootfs: Path) -> str:
    """Convert the root in place: /usr/etc, kernel and initramfs in /usr/lib/modules/<kver>/, empty /var and /boot,
    /sysroot, the /ostree link, /home and friends as links into /var. Returns the kernel version."""
    modules = rootfs / "usr/lib/modules"
    kver = next(p.name for p in modules.iterdir() if (p / "initramfs.img").exists())
    boot = rootfs / "boot"
    shutil.move(boot / f"vmlinuz-{kver}", modules / kver / "vmlinuz")
    for name in ("config", "System.map"):
        if (boot / f"{name}-{kver}").exists():
            shutil.move(boot / f"{name}-{kver}", modules / kver / name)
    shutil.rmtree(boot)
    boot.mkdir()
    for stale in ("vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"):
        (rootfs / stale).unlink(missing_ok=True)

    etc = rootfs / "etc"
    (etc / "machine-id").write_text("")  # systemd makes one at first boot
    (etc / "fstab").write_text("# Written by the installer.\n")
    (etc / "hostname").write_text("localhost\n")
    shutil.rmtree(etc / "apt/apt.conf.d/99mmdebstrap", ignore_errors=True)
    shutil.move(etc, rootfs / "usr/etc")

    write_autovar(rootfs)
    shutil.rmtree(rootfs / "var")
    (rootfs / "var").mkdir()
    for name in ("tmp", "run", "dev"):  # mmdebstrap leaves device nodes in /dev; ostree commits none
        shutil.rmtree(rootfs / name, ignore_errors=True)
        (rootfs / name).mkdir()
    special = subprocess.run(["find", str(rootfs), "-xdev", "(", "-type", "b", "-o", "-type", "c", "-o", "-type",
                              "p", "-o", "-type", "s", ")"], capture_output=True, text=True, check=True).stdout
    if special.strip():
        raise RuntimeError(f"special files in the root, which ostree cannot commit:\n{special}")
    (rootfs / "tmp").chmod(0o1777)
    for link, target in VAR_LINKS.items():
        path = rootfs / link
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
        path.symlink_to(target)
    (rootfs / "sysroot").mkdir(exist_ok=True)
    (rootfs / "ostree").symlink_to("sysroot/ostree")
    version = rootfs / VERSION_FILE
    version.parent.mkdir(parents=True, exist_ok=True)
    version.write_text("1\n")
    return kver


def rev_parse(repo: Path, ref: str) -> str | None:
    result = subprocess.run(["ostree", f"--repo={repo}", "rev-parse", ref], capture_output=True, text=True,
                            check=False)
    return result.stdout.strip() if result.returncode == 0 else None


@dataclass
class Base:
    repo: Path
    commit: str
    kernel: str
    python: str
    """The venv's site-packages, relative to the root."""
    seconds: float


def build_base(cache: Path = CACHE) -> Base:
    """The Debian root with the project's dependencies, in the ostree layout, committed on BASE_REF (cached)."""
    key = base_key()
    work = cache / f"base-{key}"
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second build of the same key waits for the first, then hits
        done = work / "complete.json"
        if done.exists():
            info = json.loads(done.read_text())
            return Base(work / "repo", info["commit"], info["kernel"], info["python"], info["seconds"])
        start = time.monotonic()
        for stale in ("repo", "rootfs", "wheels"):
            shutil.rmtree(work / stale, ignore_errors=True)
        log(f"building the base {key} in {work} (mmdebstrap {SUITE}, {len(packages())} packages and their "
            "dependencies)")
        build_wheels(work / "wheels")
        mmdebstrap(work / "rootfs", work / "wheels", cache / "debs")
        log(f"root made in {time.monotonic() - start:.0f} s; converting to the ostree layout")
        kver = to_ostree_layout(work / "rootfs")
        python = str(next((work / "rootfs" / VENV / "lib").glob("python3*/site-packages")).relative_to(
            work / "rootfs"))
        repo = work / "repo"
        run("ostree", f"--repo={repo}", "init", "--mode=archive")
        run("ostree", f"--repo={repo}", "commit", f"--branch={BASE_REF}", f"--tree=dir={work / 'rootfs'}",
            "--subject=Phyllome OS host payload base (Debian 12)", stdout=subprocess.DEVNULL)
        shutil.rmtree(work / "rootfs")
        shutil.rmtree(work / "wheels")
        base = Base(repo, rev_parse(repo, BASE_REF) or "", kver, python, time.monotonic() - start)
        done.write_text(json.dumps({"commit": base.commit, "kernel": kver, "python": python,
                                    "seconds": round(base.seconds, 1)}))
        log(f"base committed in {base.seconds:.0f} s")
        return base


def write_project_layer(layer: Path, site_packages: str) -> None:
    """This project's files on top of the base: the project in the venv with its commands, the units (the hook)."""
    install_project(layer / site_packages, f"/{site_packages}", layer / "usr/bin", f"/{VENV}")
    # HOOK (project units): the first-boot and unlock units (package data in phyllome_installer/data/systemd/),
    # installed and enabled the one way (phyllome_installer/units.py: systemctl --root), their links moved with /etc
    # to /usr/etc, where ostree keeps the defaults of /etc.
    units.install(layer, units.INSTALLED_UNITS)
    shutil.move(layer / "etc", layer / "usr/etc")
    # fscrypt finds a filesystem's metadata in <its main mount>/.fscrypt. On a booted ostree host the root of the
    # filesystem is mounted at /sysroot *inside* "/" (a bind of the deployment, the same filesystem), and fscrypt
    # takes "/" for the main mount: without this link it says the VM store's filesystem "is not setup for use with
    # fscrypt" and nothing can unlock it. The link follows upgrades, like /ostree -> sysroot/ostree.
    (layer / ".fscrypt").symlink_to("sysroot/.fscrypt")
    for path in [layer, *layer.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def install_project(site: Path, shown_as: str, bin_dir: Path, venv: str) -> None:
    """The project's wheel installed into ``site`` (``shown_as`` on the running system), byte-compiled, and its
    COMMANDS written into ``bin_dir``, run by ``venv``'s interpreter: the payload's, and the bench's copy of it."""
    with tempfile.TemporaryDirectory(prefix="phyllome-wheel-") as tmp:
        wheel = build_wheel(Path(tmp))
        run(sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "--no-index",
            "--no-compile", "--target", str(site), str(wheel), stdout=subprocess.DEVNULL)
    shutil.rmtree(site / "bin", ignore_errors=True)  # pip's own scripts; the commands are written below
    for direct_url in site.glob("phyllome_installer-*.dist-info/direct_url.json"):
        direct_url.unlink()  # it names the temporary wheel's path: the commit would differ at every build
    for top in PROJECT:
        assert (site / top).is_dir(), f"the wheel did not install {top}"
    # Hash-checked .pyc (a deployment's files all have mtime 0, so timestamps would never match): the payload's
    # Python is this machine's (both Debian 12's python3), so the bytecode is the same.
    run("/usr/bin/python3", "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash",
        "-d", shown_as, str(site), stdout=subprocess.DEVNULL)
    bin_dir.mkdir(parents=True, exist_ok=True)
    for command, function in COMMANDS.items():  # nothing runs before the function (pip's scripts import re)
        (bin_dir / command).write_text(f"#!{venv}/bin/python3\nimport sys\n\n"
                                       f"from phyllome_installer.cli import {function}\n\nsys.exit({function}())\n")
        (bin_dir / command).chmod(0o755)


def build(cache: Path = CACHE) -> Payload:
    """The payload: the base plus this project, committed on REF in a repository of its own (cached)."""
    base = build_base(cache)
    key = f"{base_key()}-{project_key()}"
    work = cache / key
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = work / "complete.json"
        if done.exists():
            info = json.loads(done.read_text())
            return Payload(work / "repo", REF, info["commit"], base.kernel, info["size"],
                           base.seconds + info["seconds"], True)
        start = time.monotonic()
        repo, layer = work / "repo", work / "layer"
        for stale in (repo, layer):
            shutil.rmtree(stale, ignore_errors=True)
        log(f"adding the project ({key}) to the base")
        run("ostree", f"--repo={repo}", "init", "--mode=archive")
        # The base's objects, as hard links (objects are immutable: ostree writes new ones, never changes one).
        run("cp", "-al", f"{base.repo}/objects/.", f"{repo}/objects/")
        run("ostree", f"--repo={repo}", "refs", f"--create={BASE_REF}", base.commit)
        write_project_layer(layer, base.python)
        run("ostree", f"--repo={repo}", "commit", f"--branch={REF}", f"--tree=ref={base.commit}",
            f"--tree=dir={layer}", "--subject=Phyllome OS host payload (Debian 12)",
            f"--add-metadata-string=version=1.{key}", stdout=subprocess.DEVNULL)
        run("ostree", f"--repo={repo}", "summary", "-u")
        shutil.rmtree(layer)
        seconds = time.monotonic() - start
        payload = Payload(repo, REF, rev_parse(repo, REF) or "", base.kernel, du(repo), base.seconds + seconds,
                          False)
        done.write_text(json.dumps({"commit": payload.commit, "size": payload.size, "seconds": round(seconds, 1)}))
        log(f"project layer committed in {seconds:.1f} s")
        return payload


def next_version(payload: Payload) -> str:
    """The second version: the same tree with VERSION_FILE changed, a child commit on NEXT_REF (seconds: only
    the changed file and its directories are new objects). Idempotent."""
    existing = rev_parse(payload.repo, NEXT_REF)
    if existing:
        bindings = subprocess.run(["ostree", f"--repo={payload.repo}", "show", existing,
                                   "--print-metadata-key=ostree.ref-binding"], capture_output=True, text=True,
                                  check=False).stdout
        if f"'{REF}'" in bindings:
            return existing
    with tempfile.TemporaryDirectory() as tmp:
        overlay = Path(tmp)
        (overlay / VERSION_FILE).parent.mkdir(parents=True)
        (overlay / VERSION_FILE).write_text("2\n")
        for path in [overlay, *overlay.rglob("*")]:  # the overlay's directories replace the tree's metadata
            path.chmod(0o755 if path.is_dir() else 0o644)
        run("ostree", f"--repo={payload.repo}", "commit", f"--branch={NEXT_REF}", f"--parent={payload.commit}",
            # Bound to REF as well: it is published there (a pull of REF checks the commit's ref bindings).
            f"--bind-ref={REF}",
            f"--tree=ref={payload.commit}", f"--tree=dir={overlay}", "--owner-uid=0", "--owner-gid=0",
            "--subject=Phyllome OS host payload, second version", "--add-metadata-string=version=2",
            stdout=subprocess.DEVNULL)
    run("ostree", f"--repo={payload.repo}", "summary", "-u")
    return rev_parse(payload.repo, NEXT_REF) or ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--next", action="store_true", help=f"also commit the second version on {NEXT_REF}")
    parser.add_argument("--print-repo", action="store_true", help="print only the repository path")
    parser.add_argument("--print-key", action="store_true", help="print the cache key and exit")
    args = parser.parse_args(argv)
    if args.print_key:
        print(cache_key())
        return 0
    if os.geteuid() != 0:
        print("payload: mmdebstrap --mode=root and ostree commits with the packages' owners need root",
              file=sys.stderr)
        return 1
    start = time.monotonic()
    payload = build()
    if args.print_repo:
        print(payload.repo)
        return 0
    log(payload.describe() + f"; this run {time.monotonic() - start:.1f} s")
    if args.next:
        log(f"second version: {NEXT_REF} = {next_version(payload)[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
