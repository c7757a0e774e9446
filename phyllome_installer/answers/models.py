"""The answer file's schema: pydantic models, strict, every key documented, unknown keys refused."""

from __future__ import annotations

import fnmatch
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, model_validator

from ..core.facts import OS_ID_PATTERN, VM_NAME_PATTERN, GpuRequest, Vmm, pci_address
from .base import DEFAULT_PROTECT, SCHEMA_VERSION, RuleError, enforce
from .rules import config_rules, encryption_rules, match_rules, storage_rules, user_rules, vm_rules
from .values import (
    AbsolutePath,
    Glob,
    Hostname,
    KernelArg,
    Keymap,
    Locale,
    Size,
    SshKey,
    StateDir,
    Timezone,
    UserName,
    at_least,
    control_problems,
    parse_size,
    password_hash_rule,
    password_rule,
)
from .writer import toml_table

#: Characters of user kernel arguments at most: x86-64's command line holds 2048, with the installer's own.
MAX_USER_KARGS = 1024


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True, strict=True,
                              hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        """Every string of the answer file reaches a file or a command: none may hold a control character."""
        if isinstance(data, dict):
            problems = control_problems(data)
            if problems:
                raise RuleError(problems)
        return data


class DiskMatch(Section):
    """Choose the target disk by rules instead of naming it. All given rules must hold."""

    model: Glob | None = None
    """Shell glob on the disk's model, e.g. "Samsung*"."""
    serial: Glob | None = None
    """Shell glob on the disk's serial number."""
    transport: Literal["nvme", "sata", "sas", "scsi", "usb", "virtio", "mmc", "loop"] | None = None
    """Only disks on this transport."""
    min_size: Size | None = None
    """Only disks at least this big, e.g. "200GiB"."""
    max_size: Size | None = None
    """Only disks at most this big."""
    pick: Literal["largest", "smallest", "only"] = "only"
    """Which matching disk to take: the largest, the smallest, or fail unless exactly one matches."""

    @model_validator(mode="after")
    def _check(self) -> DiskMatch:
        enforce(match_rules, self)
        return self

    def accepts(self, *, model: str, serial: str, transport: str, size: int) -> bool:
        return (
            (self.model is None or fnmatch.fnmatchcase(model, self.model))
            and (self.serial is None or fnmatch.fnmatchcase(serial, self.serial))
            and (self.transport is None or transport == self.transport)
            and (self.min_size is None or size >= parse_size(self.min_size))
            and (self.max_size is None or size <= parse_size(self.max_size))
        )


class Encryption(Section):
    """fscrypt protection of the VM store (filesystem-level encryption on the F2FS or ext4 root)."""

    enabled: bool = True
    """Encrypt the directories listed in `protect`."""
    passphrase: SecretStr | None = None
    """The passphrase that unlocks the VM store (at least 8 characters). Never logged or written back."""
    passphrase_file: AbsolutePath | None = None
    """Read the passphrase from this file at install time instead (first line; at least 8 characters)."""
    protect: list[StateDir] = Field(default_factory=lambda: list(DEFAULT_PROTECT))
    """Directories of the installed system to encrypt. In this version only the VM store, "/var/lib/libvirt/images":
    the directory the unlock at every boot opens and the first boot puts the VM disks in."""
    recovery_key: bool = True
    """Also add a generated recovery protector; its code is shown once at the end of the install."""

    @model_validator(mode="after")
    def _check(self) -> Encryption:
        enforce(encryption_rules, self)
        return self


class Storage(Section):
    """The target disk and how to lay it out. The whole disk is erased."""

    disk: str | None = None
    """The target disk: a path such as /dev/nvme0n1, or a stable /dev/disk/by-id/... or by-path name."""
    match: DiskMatch | None = None
    """Rules that choose the target disk (instead of `disk`)."""
    wipe: str | None = None
    """Consent to erase, required for an unattended install: the serial, by-id name or path of the target disk
    (with [storage.match]: the serial of the disk, or "matched" to erase whichever disk the rules choose)."""
    root_fs: Literal["f2fs", "ext4"] = "f2fs"
    """Root filesystem: f2fs (default), or ext4 for kernels without F2FS (e.g. sandboxes)."""
    compression: bool = False
    """F2FS transparent compression (f2fs only)."""
    encryption: Encryption = Field(default_factory=lambda: Encryption(enabled=False))
    """fscrypt encryption of the VM store. Without this table, the VM store is not encrypted."""

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Storage:
        enforce(storage_rules, self, bool(info.context and info.context.get("unattended")))
        return self


#: ostree's ref grammar (``ostree_validate_rev``): slash-separated parts of letters, digits, '_', '-', '.', each
#: starting with a letter, digit or '_'. So a ref never starts with '-' and never reaches ostree as an option.
_REF_PATTERN = r"^[A-Za-z0-9_][-._A-Za-z0-9]*(/[A-Za-z0-9_][-._A-Za-z0-9]*)*$"
Ref = Annotated[str, Field(pattern=_REF_PATTERN, max_length=255)]


class LocalPayload(Section):
    """An ostree repository on the install medium."""

    kind: Literal["local"]
    """local: pull-local from a repository on the medium."""
    repo: AbsolutePath
    """Path of the ostree repository."""
    ref: Ref
    """The ref to deploy, e.g. "phyllome/x86_64/stable"."""
    upgrade_url: Annotated[str, Field(pattern=r"^https?://[^\s@]+$")] | None = None
    """Where upgrades come from: the installed host gets this ostree remote and deploys `remote:ref`, so
    `ostree admin upgrade` (or rpm-ostree upgrade) follows it. Without it the host is installed from the medium
    and does not upgrade (the install says so)."""
    remote: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")] = "phyllome"
    """Name of the ostree remote for upgrade_url."""
    gpg_verify: bool = True
    """Verify the upgrades' GPG signatures (the remote's keys must be in the payload)."""


class UrlPayload(Section):
    """An ostree repository served over HTTP(S)."""

    kind: Literal["url"]
    """url: add a remote and pull from it."""
    url: Annotated[str, Field(pattern=r"^(https?|file)://\S+$")]
    """URL of the ostree repository."""
    ref: Ref
    """The ref to deploy."""
    gpg_verify: bool = True
    """Verify the commit's GPG signature (needs the remote's keys on the medium)."""
    remote: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")] = "phyllome"
    """Name of the ostree remote to configure."""

    @model_validator(mode="after")
    def _no_credentials(self) -> UrlPayload:
        if "@" in self.url.split("://", 1)[-1].split("/", 1)[0]:
            raise RuleError([(("url",), "credentials in the URL are not supported: they would be visible in the "
                                        "process list and stored in the installed system's repository "
                                        "configuration; serve the repository without them (or over a "
                                        "private network)")])
        return self


class ContainerPayload(Section):
    """An ostree-native container image."""

    kind: Literal["container"]
    """container: deploy an ostree-native container image."""
    image: Annotated[str, Field(pattern=r"^[A-Za-z0-9][^\s]*$", max_length=4096)]
    """The image reference, e.g. "registry.example.org/phyllome/host:stable"."""
    transport: Literal["registry", "oci", "oci-archive", "containers-storage"] = "registry"
    """How to reach the image."""


Payload = Annotated[Union[LocalPayload, UrlPayload, ContainerPayload], Field(discriminator="kind")]  # noqa: UP007


class Host(Section):
    """The installed host's identity and kernel command line."""

    hostname: Hostname = "phyllome"
    """The host name (RFC 1123)."""
    keyboard: Keymap = "us"
    """Console keymap (vconsole.conf KEYMAP), e.g. "us", "fr", "de-nodeadkeys"."""
    locale: Locale = "en_US.UTF-8"
    """System locale (locale.conf LANG)."""
    timezone: Timezone = "UTC"
    """Time zone from the tz database, e.g. "Europe/Paris"."""
    kernel_args: list[KernelArg] = Field(default_factory=list, max_length=64)
    """Kernel arguments added after the virtualization defaults chosen for the CPU; one argument per item (at
    most 1024 characters in all: the kernel's command line holds 2048 on x86-64, with the installer's own)."""

    @model_validator(mode="after")
    def _command_line_fits(self) -> Host:
        if len(" ".join(self.kernel_args)) > MAX_USER_KARGS:
            raise RuleError([(("kernel_args",), f"the kernel arguments take more than {MAX_USER_KARGS} characters; "
                                                "the kernel's command line would be cut short")])
        return self


class User(Section):
    """An administrator account."""

    name: UserName
    """Login name (useradd rules)."""
    full_name: Annotated[str, Field(pattern=r"^[^:]{0,255}$")] = ""
    """The user's full name (GECOS): any text without ':' (the field separator of /etc/passwd)."""
    password: Annotated[SecretStr, AfterValidator(password_rule)] | None = None
    """The password in clear text; hashed before it reaches the target. Never logged or written back."""
    password_hash: Annotated[SecretStr, AfterValidator(password_hash_rule)] | None = None
    """A crypt(3) hash such as "$6$..." or "$y$...", instead of password."""
    groups: list[Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]] = Field(
        default_factory=lambda: ["wheel", "libvirt"])
    """Supplementary groups. wheel gives sudo; libvirt gives access to the VMs."""
    ssh_keys: list[SshKey] = Field(default_factory=list)
    """OpenSSH public keys allowed to log in as this user."""

    @model_validator(mode="after")
    def _check(self) -> User:
        enforce(user_rules, self)
        return self


class PrimaryVm(Section):
    """The primary guest VM to create at first boot (phyllome-firstboot run --unattended)."""

    name: Annotated[str, Field(pattern=VM_NAME_PATTERN)] = "desktop"
    """libvirt domain name."""
    os: Annotated[str, Field(pattern=OS_ID_PATTERN)] | None = None
    """Guest OS, as a libosinfo short id (e.g. "win11", "fedora37"); detected from the ISO when omitted. An id
    osinfo-db does not know falls back to the newest of its family (phyllome-firstboot vm os-list)."""
    iso: AbsolutePath | None = None
    """Installation ISO on the host."""
    memory: Annotated[Size, at_least("256MiB", "a guest's memory")] | None = None
    """Guest memory (at least 256MiB); default: the host's memory minus its reserve, never below osinfo's minimum."""
    vcpus: int | None = Field(default=None, ge=1, le=512)
    """Virtual CPUs; default: the host's CPUs minus one core, never below osinfo's minimum."""
    disk_size: Annotated[Size, at_least("1GiB", "a guest's disk")] | None = None
    """Size of the guest's disk (at least 1GiB) in the encrypted VM store; default: osinfo's recommendation."""
    disk_format: Literal["qcow2", "raw"] = "qcow2"
    """Format of the guest's disk."""
    gpu: GpuRequest = "auto"
    """Graphics strategy (firstboot/gpu.py's names); auto takes the first-boot checks' recommendation."""
    gpu_address: Annotated[str, AfterValidator(pci_address)] | None = None
    """The host GPU to use where the machine has several, by PCI address as `phyllome-firstboot check` or
    `lspci -D` names it (e.g. "0000:01:00.0"; "01:00.0" means domain 0000); default: the best one offered."""
    vmm: Vmm = "qemu"
    """Virtual machine monitor: QEMU/KVM, or Cloud Hypervisor through libvirt's ch driver."""
    tpm: bool | None = None
    """Emulated TPM 2.0; default: on where the OS requires it (Windows 11)."""
    start: bool = True
    """Start the VM once it is created."""

    @model_validator(mode="after")
    def _check(self) -> PrimaryVm:
        enforce(vm_rules, self)
        return self


class FirstBoot(Section):
    """What the first boot does after the hardware checks."""

    enabled: bool = True
    """Run the first boot on tty1 (false: no first-boot marker is written; the host boots to its login prompt)."""
    unattended: bool = False
    """Create the VM from [firstboot.vm] without screens (phyllome-firstboot run --unattended); false: the
    first-boot screens open on tty1, prefilled from [firstboot.vm], asking only what it leaves out."""
    vm: PrimaryVm | None = None
    """Pre-seed the primary VM; without it the wizard asks."""
    tpm_unlock: bool = False
    """Let the TPM 2.0 unlock the VM store at boot while the boot chain is unchanged (sealed to Secure Boot's
    state, PCR 7): enrolled at the first real boot, right after the passphrase unlocked the store. The passphrase
    and the recovery code keep working; when the TPM refuses, the passphrase is asked."""

    def describe(self) -> str:
        """In words, for the installer's summary."""
        if not self.enabled:
            return "off (no first-boot screens; the host starts to its login prompt)"
        vm = self.vm
        what = f"the VM {vm.name}" + (f" ({vm.os})" if vm and vm.os else "") if vm else "the primary VM"
        tpm = "; the TPM unlocks the VM store from then on" if self.tpm_unlock else ""
        if self.unattended:
            return f"unattended: hardware checks, then {what} from [firstboot.vm]{tpm}"
        return f"on tty1 at the first start: unlock, hardware checks, then {what}{tpm}"

    def to_toml(self) -> str:
        """This section alone as TOML (it holds no secret): what the installer saves into the target."""
        out: list[str] = []
        toml_table({"firstboot": self.model_dump(mode="python", exclude_none=True)}, [], out)
        return "# [firstboot] of the answer file, saved by phyllome-install for the first boot.\n" + \
            "\n".join(out).lstrip("\n") + "\n"


class Post(Section):
    """What happens when the install is done."""

    action: Literal["reboot", "poweroff", "none"] = "reboot"
    """reboot, poweroff, or none (stay in the installer)."""


class ReportMachine(Section):
    """The machine this answer file is for: a server that answers another machine's file is refused. Every field
    given must match the machine (compared as the identity query carries them: docs/fleet.md)."""

    uuid: Annotated[str, Field(pattern=r"^[0-9A-Fa-f-]{1,64}$")] | None = None
    """The DMI product UUID."""
    mac: Annotated[str, Field(pattern=r"^[0-9A-Fa-f:-]{1,64}$")] | None = None
    """The MAC address of one of its network interfaces."""
    serial: Annotated[str, Field(pattern=r"^[A-Za-z0-9._~-]{1,64}$")] | None = None
    """The DMI product serial."""


class Report(Section):
    """Install events, POSTed as JSON (docs/fleet.md): the install's start, each task, its end; the first boot's
    result. A server that is down or slow never slows or fails the install."""

    url: Annotated[str, Field(pattern=r"^https?://[A-Za-z0-9._~:/?#@!$&()*+,;=%\[\]'-]{1,2000}$")] | None = None
    """Where the events go (http:// or https://); the kernel argument phyllome.events= when absent."""
    machine: ReportMachine | None = None
    """[report.machine]: the machine this file is for."""


class InstallConfig(Section):
    """A complete install: the answer file's root."""

    version: int
    """Answer file format version. This installer reads version 1."""
    storage: Storage
    """[storage]: the target disk and its layout."""
    payload: Payload
    """[payload]: where the Phyllome OS host comes from."""
    host: Host = Field(default_factory=Host)
    """[host]: hostname, keyboard, locale, timezone, kernel arguments."""
    users: list[User] = Field(min_length=1)
    """[[users]]: at least one administrator who can log in."""
    firstboot: FirstBoot = Field(default_factory=FirstBoot)
    """[firstboot]: the first boot's checks and primary VM."""
    post: Post = Field(default_factory=Post)
    """[post]: reboot, power off, or stay when done."""
    report: Report = Field(default_factory=Report)
    """[report]: install events for a fleet's server, and the machine this file is for."""

    @model_validator(mode="before")
    @classmethod
    def _version_first(cls, data: Any) -> Any:
        if isinstance(data, dict) and "version" in data and data["version"] != SCHEMA_VERSION:
            version = data["version"]
            if isinstance(version, int) and not isinstance(version, bool):
                raise RuleError([(("version",), f"unsupported version {version}: this installer reads "
                                                f"version {SCHEMA_VERSION}")])
        return data

    @model_validator(mode="after")
    def _check(self) -> InstallConfig:
        enforce(config_rules, self)
        return self

    def secrets(self) -> list[str]:
        """Every secret value in this config, for the redactor."""
        values = [self.storage.encryption.passphrase]
        for user in self.users:
            values += [user.password, user.password_hash]
        return [v.get_secret_value() for v in values if v is not None]
