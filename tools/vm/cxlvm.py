#!/usr/bin/env python3
"""Build and run a throw-away Linux VM with emulated CXL type-3 memory devices.

Standard library only (Python 3.11).  Must run as root on a Debian host
(debootstrap, chroot, unshare, mke2fs).  See tools/vm/README.md.

CLI::

    python3 tools/vm/cxlvm.py build
    python3 tools/vm/cxlvm.py run [--devices pmem,ram] [--share DIR] [--timeout S] -- CMD...
    python3 tools/vm/cxlvm.py shell-cmd [--devices ...] [--share DIR] -- CMD...

Python API (host side, e.g. from pytest)::

    import cxlvm
    cxlvm.build_image()                      # -> Path of the cached image dir
    r = cxlvm.run_in_vm("cxl list -M", devices=["pmem"], timeout=300)
    r.returncode, r.stdout, r.stderr, r.boot_seconds, r.wall_seconds
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------
# Exit codes of the CLI (a guest command's own status is passed through).
# --------------------------------------------------------------------------
EXIT_USAGE = 2  # bad command line
EXIT_BUILD_FAILED = 70  # image build failed for a reason other than fetching
EXIT_FETCH_FAILED = 77  # a package could not be fetched: skip this tier
EXIT_NOT_BOUND = 123  # VM booted but CXL memdevs did not bind in time
EXIT_TIMEOUT = 124  # whole run exceeded --timeout (VM killed)
EXIT_INFRA = 125  # QEMU failed / guest never reported a result

# --------------------------------------------------------------------------
# Build inputs.  Everything that influences the image goes into the cache key.
# Bump BUILD_VERSION when changing the build procedure below.
# --------------------------------------------------------------------------
BUILD_VERSION = 1
APT_BUILD_VERSION = 1  # bump when changing the apt stage of non-6.12 stacks
SUITE = "trixie"
MIRROR = os.environ.get("CXLCTL_VM_MIRROR", "http://deb.debian.org/debian")
PACKAGES = [
    # kernel + QEMU (QEMU only runs in the host-side chroot)
    "linux-image-amd64",
    "qemu-system-x86",
    "zstd",
    # guest userland
    "kmod",
    "busybox-static",
    "util-linux",
    "ndctl",
    "python3",
    "python3-click",
    "python3-rich",
    "python3-pytest",
    "python3-hypothesis",
    "python3-pytest-cov",
]
PIP_PACKAGES = ["ioctl-opt==1.3.1"]  # pure Python, no Debian package
HOST_APT = {
    "debootstrap": "debootstrap",
    "mke2fs": "e2fsprogs",
    "unshare": "util-linux",
    "chroot": "coreutils",
}
# Modules the initramfs needs to mount the root disk and the 9p shares.
# ext4 looks up crc32c through the crypto API at mount time (request_module
# does not work without modprobe in the initramfs), so load it explicitly.
# A trailing "?" marks optional modules.
INITRD_MODULES = [
    "virtio_pci",
    "virtio_blk",
    "crc32c_generic",
    "crc32c_intel?",
    "ext4",
    "9p",
    "9pnet_virtio",
]
# Paths removed from the guest image (QEMU is only needed on the host side).
GUEST_PRUNE = [
    "boot",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/qemu",
    "usr/share/seabios",
    "usr/lib/ipxe",
    "usr/share/ipxe",
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/lib/x86_64-linux-gnu/qemu",
]
GUEST_PRUNE_GLOBS = ["usr/bin/qemu-*"]


# --------------------------------------------------------------------------
# Kernel stacks.  "6.12" is the image built from the constants above (its
# cache key is computed from exactly those inputs, as before stacks existed).
# "7.3" starts from the same debootstrap (minus kernel, QEMU and ndctl) and
# then installs Linux 7.3 + QEMU 11.1 from trixie-backports and ndctl 85 from
# sid inside the root with apt, sid pinned so that nothing else comes from it.
# --------------------------------------------------------------------------
DEFAULT_STACK = "6.12"
SID_PACKAGES = ["cxl", "ndctl", "daxctl", "libcxl1", "libcxl-dev", "libndctl6", "libdaxctl1"]
BPO_PACKAGES = ["linux-image-amd64", "qemu-system-x86"]
# sid's Release file may be past its Valid-Until as seen from a trixie root
APT_CONF_73 = (
    'Acquire::Check-Valid-Until "false";\n'
    'Acquire::Check-Date "false";\n'
    'APT::Install-Recommends "false";\n'
    'APT::Install-Suggests "false";\n'
)
APT_PREFS_73 = (
    "Package: *\nPin: release n=sid\nPin-Priority: -1\n\n"
    f"Package: {' '.join(SID_PACKAGES)}\nPin: release n=sid\nPin-Priority: 990\n"
)


@dataclasses.dataclass(frozen=True)
class Stack:
    """One kernel/QEMU/cxl-cli combination the tier can boot."""

    name: str
    title: str  # for people: "Linux 6.12 + QEMU 10 + cxl-cli 81"
    packages: tuple[str, ...]  # debootstrap --include
    initrd_modules: tuple[str, ...]
    # installed with apt inside the root after debootstrap (empty: none)
    apt_sources: tuple[str, ...] = ()  # "SUITE" lines for MIRROR, component main
    apt_install: tuple[str, ...] = ()  # apt-get install arguments
    apt_conf: str = ""
    apt_prefs: str = ""
    # package -> version prefix the root must end up with (else the build fails)
    versions: tuple[tuple[str, str], ...] = ()


STACKS: dict[str, Stack] = {
    "6.12": Stack(
        "6.12",
        "Linux 6.12 + QEMU 10.0 + cxl-cli 81 (Debian trixie)",
        tuple(PACKAGES),
        tuple(INITRD_MODULES),
    ),
    "7.3": Stack(
        "7.3",
        "Linux 7.3 + QEMU 11.1 (trixie-backports) + cxl-cli 85 (sid)",
        tuple(p for p in PACKAGES if p not in ("linux-image-amd64", "qemu-system-x86", "ndctl")),
        # 7.3 has no crc32c_generic/crc32c_intel: ext4's crc32c is a library there
        (
            "virtio_pci",
            "virtio_blk",
            "crc32c_generic?",
            "crc32c_intel?",
            "crc32c_cryptoapi?",
            "ext4",
            "9p",
            "9pnet_virtio",
        ),
        apt_sources=("trixie-backports", "sid"),
        # -t: the new kernel's and QEMU's dependencies come from backports too
        apt_install=("-t", "trixie-backports", *BPO_PACKAGES, *SID_PACKAGES),
        apt_conf=APT_CONF_73,
        apt_prefs=APT_PREFS_73,
        versions=(
            ("linux-image-amd64", "7.3"),
            ("qemu-system-x86", "1:11.1"),
            ("ndctl", "85"),
            ("cxl", "85"),
            ("libcxl1", "85"),
        ),
    ),
}


def get_stack(stack: str | Stack | None = None) -> Stack:
    """The Stack for a name ("6.12", "7.3"); None means $CXLCTL_VM_STACK or 6.12."""
    if isinstance(stack, Stack):
        return stack
    name = stack or os.environ.get("CXLCTL_VM_STACK") or DEFAULT_STACK
    try:
        return STACKS[name]
    except KeyError:
        raise ValueError(f"unknown stack {name!r} (want one of {', '.join(STACKS)})") from None


DEFAULT_CACHE = "/var/cache/cxlctl-vm"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEVICE_KINDS = ("pmem", "ram")
DEV_SIZE = "256M"

# Mount points inside the host-side chroot used to reach run files.
CH_IMG = "/mnt/cxlvm-img"
CH_RUN = "/mnt/cxlvm-run"
CH_SHARE = "/mnt/cxlvm-share"

INITRD_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m.ko 2>/dev/null; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
mkdir -p /newroot
if ! mount -t ext4 /dev/vda /newroot; then
  echo "cxlvm-initrd: cannot mount root" >&2; echo o > /proc/sysrq-trigger
fi
mkdir -p /newroot/mnt/ctl
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 ctl /newroot/mnt/ctl; then
  echo "cxlvm-initrd: cannot mount ctl share" >&2; echo o > /proc/sysrq-trigger
fi
mount --move /dev /newroot/dev
mount --move /sys /newroot/sys
mount --move /proc /newroot/proc
exec switch_root /newroot /bin/sh /mnt/ctl/agent.sh
"""

# Runs as PID 1 in the guest (from the per-run ctl share, so it is not part
# of the image and not part of the cache key).
GUEST_AGENT = r"""#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CTL=/mnt/ctl
. $CTL/config.sh
off() { sync; echo o > /proc/sysrq-trigger; sleep 30; }
log() { echo "cxlvm-agent: $*" > /dev/console; }
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
hostname cxlvm
ip link set lo up 2>/dev/null
mkdir -p "$SHARE_GUEST"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144$SHARE_RO share "$SHARE_GUEST"; then
  echo "share-mount-failed" > $CTL/status; off
fi
# no udev in the guest: preload the drivers for devices created later
# (regions, namespaces, dax devices) as well as the CXL stack itself
modprobe -q -a cxl_acpi cxl_pci cxl_port cxl_mem cxl_pmem nd_pmem nd_btt \
  dax_pmem device_dax dax_cxl 2>/dev/null
n=0
while :; do
  # udev-like coldplug: load drivers for every device that has a modalias
  cat /sys/bus/*/devices/*/modalias 2>/dev/null | sort -u | xargs -r modprobe -q -a 2>/dev/null
  bound=0
  for d in /sys/bus/cxl/devices/mem*; do
    [ -e "$d/driver" ] && [ -c "/dev/cxl/${d##*/}" ] && bound=$((bound+1))
  done
  [ "$bound" -ge "$NDEV" ] && break
  n=$((n+1))
  if [ $n -gt $((BIND_TIMEOUT*10)) ]; then
    ls -l /sys/bus/cxl/devices/ > $CTL/bind-debug 2>&1
    dmesg | grep -i cxl >> $CTL/bind-debug 2>&1
    echo "not-bound $bound/$NDEV" > $CTL/status; off
  fi
  sleep 0.1
done
# let the nd/dax coldplug settle once more, then report readiness
cat /sys/bus/*/devices/*/modalias 2>/dev/null | sort -u | xargs -r modprobe -q -a 2>/dev/null
cut -d' ' -f1 /proc/uptime > $CTL/ready
cd "$SHARE_GUEST"
env -i PATH="$PATH" HOME=/root TMPDIR=/tmp TERM=dumb LANG=C.UTF-8 USER=root \
  PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$SHARE_GUEST" \
  PYTEST_ADDOPTS="-p no:cacheprovider" COVERAGE_FILE=/tmp/.coverage \
  CXLCTL_IN_VM=1 \
  sh $CTL/cmd.sh > $CTL/stdout 2> $CTL/stderr < /dev/null
rc=$?
cut -d' ' -f1 /proc/uptime > $CTL/done-uptime
echo $rc > $CTL/rc.tmp && mv $CTL/rc.tmp $CTL/rc
echo ok > $CTL/status
off
"""


class BuildError(Exception):
    def __init__(self, msg: str, code: int = EXIT_BUILD_FAILED):
        super().__init__(msg)
        self.code = code


class FetchError(BuildError):
    def __init__(self, msg: str):
        super().__init__(msg, EXIT_FETCH_FAILED)


@dataclasses.dataclass
class VmResult:
    returncode: int  # guest command status, or an EXIT_* infra code
    stdout: str
    stderr: str
    boot_seconds: float | None  # host wall time from QEMU start to "devices bound"
    wall_seconds: float  # host wall time of the whole run
    guest_uptime_ready: float | None = None  # guest /proc/uptime when bound
    infra_error: str | None = None  # None if the command really ran
    console: str = ""  # tail of the guest serial console (debugging)

    @property
    def ok(self) -> bool:
        return self.infra_error is None and self.returncode == 0


def _log(msg: str) -> None:
    print(f"cxlvm: {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("CXLCTL_VM_CACHE", DEFAULT_CACHE))


def cache_key(stack: str | Stack | None = None) -> str:
    st = get_stack(stack)
    inputs: dict[str, Any] = {
        "build_version": BUILD_VERSION,
        "suite": SUITE,
        "mirror": MIRROR,
        "packages": sorted(st.packages),
        "pip": PIP_PACKAGES,
        "initrd_modules": list(st.initrd_modules),
        "initrd_init": INITRD_INIT,
        "prune": GUEST_PRUNE,
        "prune_globs": GUEST_PRUNE_GLOBS,
    }
    if st.name != "6.12":  # the 6.12 key predates stacks: keep it unchanged
        inputs.update(
            stack=st.name,
            apt_sources=list(st.apt_sources),
            apt_install=list(st.apt_install),
            apt_conf=st.apt_conf,
            apt_prefs=st.apt_prefs,
            versions=[list(v) for v in st.versions],
            apt_build_version=APT_BUILD_VERSION,
        )
    blob = json.dumps(inputs, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def image_dir(stack: str | Stack | None = None) -> Path:
    return cache_dir() / f"img-{cache_key(stack)}"


def image_stack(img: Path) -> str:
    """The stack an image directory was built for (images from before stacks: 6.12)."""
    try:
        return str(json.loads((img / "manifest.json").read_text()).get("stack", "6.12"))
    except (OSError, ValueError):
        return "?"


# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------
_FETCH_MARKERS = (
    "couldn't download",
    "failed getting release file",
    "couldn't find these debs",
    "could not resolve",
    "failure trying to run",
    "temporary failure in name resolution",
    "unable to fetch",
    "failed to fetch",
    "could not connect",
    "no matching distribution",
    "couldn't find",
    "connection",
    "error retrieving",
    "release signed by unknown key",
    "invalid release file",
)


def _run_logged(cmd: list[str], log: Path, what: str, fetch: bool, **kw: Any) -> None:
    with open(log, "ab") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n".encode())
        f.flush()
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, **kw)
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        text = "\n".join(tail)
        sys.stderr.write(text + "\n")
        if fetch and any(m in text.lower() for m in _FETCH_MARKERS):
            raise FetchError(f"{what} failed (rc={rc}): cannot fetch packages; see {log}")
        raise BuildError(f"{what} failed (rc={rc}); see {log}")


def _ensure_host_tools(log: Path) -> None:
    if os.geteuid() != 0:
        raise BuildError("must run as root (debootstrap/chroot/unshare)")
    missing = sorted({pkg for tool, pkg in HOST_APT.items() if not shutil.which(tool)})
    if missing:
        _log(f"installing host packages: {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        _run_logged(["apt-get", "update", "-q"], log, "apt-get update", True, env=env)
        _run_logged(
            ["apt-get", "install", "-y", "-q", *missing], log, "apt-get install", True, env=env
        )


def _pip_download(dest: Path, log: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    if (
        subprocess.call([*pip, "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        != 0
    ):
        pip = ["python3", "-m", "pip"]
        if (
            subprocess.call(
                [*pip, "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            != 0
        ):
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            _run_logged(["apt-get", "update", "-q"], log, "apt-get update", True, env=env)
            _run_logged(
                ["apt-get", "install", "-y", "-q", "python3-pip"],
                log,
                "apt-get install python3-pip",
                True,
                env=env,
            )
    _run_logged(
        [
            *pip,
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-d",
            str(dest),
            *PIP_PACKAGES,
        ],
        log,
        "pip download",
        True,
    )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise FetchError("pip download produced no wheel")
    return wheels


def _zstd_decompress(data: bytes, root: Path) -> bytes:
    """Decompress the first zstd frame(s) of data (trailing garbage is ignored).

    Uses the host's zstd if installed, else the one inside the trixie root.
    """
    cmds = [["zstd", "-q", "-d", "-c"]] if shutil.which("zstd") else []
    cmds.append(["chroot", str(root), "/usr/bin/zstd", "-q", "-d", "-c"])
    out, err = b"", b""
    for cmd in cmds:
        p = subprocess.run(cmd, input=data, capture_output=True)
        out, err = p.stdout, p.stderr
        if out:
            break
    if not out:
        raise BuildError(f"zstd decompression failed: {err[-300:]!r}")
    return out


def _extract_vmlinux(vmlinuz: Path, out: Path, root: Path) -> None:
    data = vmlinuz.read_bytes()
    off = data.find(b"\x28\xb5\x2f\xfd")
    if off < 0:
        raise BuildError(f"no zstd payload in {vmlinuz}")
    raw = _zstd_decompress(data[off:], root)
    if not raw.startswith(b"\x7fELF"):
        raise BuildError("decompressed vmlinuz payload is not an ELF file")
    out.write_bytes(raw)


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """entries: (name, mode, data); for symlinks data is the target."""
    buf = io.BytesIO()
    ino = 1

    def add(name: str, mode: int, data: bytes) -> None:
        nonlocal ino
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(
            f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0)
        )
        buf.write(hdr.encode() + nb)
        buf.write(b"\0" * ((-(110 + len(nb))) % 4))
        buf.write(data)
        buf.write(b"\0" * ((-len(data)) % 4))
        ino += 1

    for name, mode, data in entries:
        add(name, mode, data)
    add("TRAILER!!!", 0, b"")
    return buf.getvalue()


def _build_initrd(
    root: Path, kver: str, out: Path, modules: tuple[str, ...] | list[str] = tuple(INITRD_MODULES)
) -> None:
    moddir = root / "lib/modules" / kver
    deps: dict[str, list[str]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {Path(m).name.split(".ko")[0].replace("-", "_"): m for m in deps}
    builtin = {
        Path(m).name.split(".ko")[0].replace("-", "_")
        for m in (moddir / "modules.builtin").read_text().split()
    }
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for d in reversed(deps[path]):  # modprobe loads the list back to front
            visit(d)
        order.append(path)

    for name in modules:
        optional = name.endswith("?")
        name = name.rstrip("?").replace("-", "_")
        if name in by_name:
            visit(by_name[name])
        elif name not in builtin and not optional:
            raise BuildError(f"kernel module {name} not found for {kver}")
    busybox = root / "usr/bin/busybox"
    if not busybox.exists():
        busybox = root / "bin/busybox"
    bb = busybox.read_bytes()
    entries: list[tuple[str, int, bytes]] = []
    for d in ("bin", "dev", "proc", "sys", "newroot", "modules"):
        entries.append((d, stat.S_IFDIR | 0o755, b""))
    entries.append(("bin/busybox", stat.S_IFREG | 0o755, bb))
    entries.append(("bin/sh", stat.S_IFLNK | 0o777, b"busybox"))
    entries.append(("init", stat.S_IFREG | 0o755, INITRD_INIT.encode()))
    names = []
    for rel in order:
        raw = (moddir / rel).read_bytes()
        if rel.endswith(".xz"):
            raw = lzma.decompress(raw)
        elif rel.endswith(".zst"):
            raw = _zstd_decompress(raw, root)
        elif rel.endswith(".gz"):
            raw = gzip.decompress(raw)
        name = Path(rel).name.split(".ko")[0]
        names.append(name)
        entries.append((f"modules/{name}.ko", stat.S_IFREG | 0o644, raw))
    entries.append(("modules/order", stat.S_IFREG | 0o644, ("\n".join(names) + "\n").encode()))
    out.write_bytes(gzip.compress(_cpio_newc(entries), compresslevel=6, mtime=0))


def _install_wheels(root: Path, wheels: list[Path]) -> None:
    pydirs = sorted((root / "usr/lib").glob("python3.[0-9]*"))
    if not pydirs:
        raise BuildError("no python3 in guest root")
    site = root / "usr/local/lib" / pydirs[-1].name / "dist-packages"
    site.mkdir(parents=True, exist_ok=True)
    for whl in wheels:
        with zipfile.ZipFile(whl) as z:
            z.extractall(site)


def _dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for f in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            total += st.st_blocks * 512
        total += 4096 * len(dirnames)
    return total


def _make_guest_image(root: Path, work: Path, out: Path, log: Path) -> None:
    guest = work / "guest-tree"
    _run_logged(["cp", "-al", str(root), str(guest)], log, "cp -al", False)
    for rel in GUEST_PRUNE:
        p = guest / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
            p.mkdir()
    for pat in GUEST_PRUNE_GLOBS:
        for p in guest.glob(pat):
            p.unlink()
    # guest specific config (new files: don't touch the hard-linked originals)
    for rel, text in {"etc/hostname": "cxlvm\n", "etc/fstab": "# managed by cxlvm agent\n"}.items():
        p = guest / rel
        if p.exists():
            p.unlink()
        p.write_text(text)
    size_mb = int(_dir_bytes(guest) * 1.25 / 2**20) + 384
    _run_logged(
        [
            "mke2fs",
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            "^has_journal",
            "-m",
            "0",
            "-L",
            "cxlvm-root",
            "-d",
            str(guest),
            str(out),
            f"{size_mb}M",
        ],
        log,
        "mke2fs",
        False,
    )
    shutil.rmtree(guest)


def _safe_rmtree(path: Path) -> None:
    """rmtree that refuses to descend into anything still mounted."""
    if not path.exists():
        return
    real = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            mnt = line.split()[1].replace("\\040", " ")
            if mnt == real or mnt.startswith(real + "/"):
                _log(f"not removing {path}: {mnt} is mounted")
                return
    shutil.rmtree(path, ignore_errors=True)


def _apt_stage(st: Stack, root: Path, cache: Path, log: Path) -> dict[str, str]:
    """Install st.apt_install inside the debootstrapped root; returns package versions."""
    apt_dir = root / "etc/apt"
    (apt_dir / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (apt_dir / "sources.list.d/cxlvm.list").write_text(
        "".join(f"deb {MIRROR} {suite} main\n" for suite in st.apt_sources)
    )
    (apt_dir / "apt.conf.d").mkdir(parents=True, exist_ok=True)
    (apt_dir / "apt.conf.d/99cxlvm").write_text(st.apt_conf)
    (apt_dir / "preferences.d").mkdir(parents=True, exist_ok=True)
    (apt_dir / "preferences.d/cxlvm").write_text(st.apt_prefs)
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    archives = cache / f"debs-{st.name}"  # apt's package cache, kept across rebuilds
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    env = "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8"
    script = (
        "set -e\n"
        "mount --make-rprivate /\n"
        f"R={shlex.quote(str(root))}\n"
        'mount -t proc proc "$R/proc"\n'
        'mount --rbind /dev "$R/dev"\n'
        'mount -t sysfs sysfs "$R/sys"\n'
        f'mount --bind {shlex.quote(str(archives))} "$R/var/cache/apt/archives"\n'
        f'chroot "$R" {env} apt-get update -q\n'
        f'chroot "$R" {env} apt-get install -y -q -o Dpkg::Use-Pty=0 '
        + shlex.join(st.apt_install)
        + "\n"
        f'chroot "$R" {env} apt-get clean\n'
    )
    _run_logged(["unshare", "--mount", "sh", "-c", script], log, "apt-get install (chroot)", True)
    out = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f", "${Package} ${Version}\\n"],
        capture_output=True,
        text=True,
    ).stdout
    have = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    for pkg, prefix in st.versions:
        if not have.get(pkg, "").startswith(prefix):
            # the archive moved on (e.g. sid past ndctl 85): the stack is not fetchable
            raise FetchError(
                f"stack {st.name}: {pkg} {prefix}* is no longer available "
                f"(installed {have.get(pkg, 'nothing')}); see {log}"
            )
    return {pkg: have.get(pkg, "") for pkg, _ in st.versions}


def build_image(force: bool = False, quiet: bool = False, stack: str | Stack | None = None) -> Path:
    """Build (or reuse) the cached VM image of a stack; returns its directory.

    Raises FetchError (code 77) if packages cannot be downloaded and
    BuildError (code 70) for other failures.
    """
    st = get_stack(stack)
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    final = image_dir(st)
    if (final / "DONE").exists() and not force:
        return final
    with open(cache / ".lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if (final / "DONE").exists() and not force:
            return final
        t0 = time.monotonic()
        work = cache / f"tmp-{cache_key(st)}-{os.getpid()}"
        _safe_rmtree(work)
        work.mkdir()
        log = work / "build.log"
        try:
            _log(f"building image {final.name} in {work} (log: {log})")
            _ensure_host_tools(log)
            root = work / "root"
            debs = cache / "debs"
            debs.mkdir(exist_ok=True)
            _log(f"stack {st.name}: {st.title}")
            _log(f"debootstrap {SUITE} ({len(st.packages)} extra packages) ...")
            _run_logged(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--cache-dir={debs}",
                    "--include=" + ",".join(st.packages),
                    SUITE,
                    str(root),
                    MIRROR,
                ],
                log,
                "debootstrap",
                True,
            )
            versions: dict[str, str] = {}
            if st.apt_install:
                _log(f"apt-get install in the root: {' '.join(st.apt_install)} ...")
                versions = _apt_stage(st, root, cache, log)
            _log("pip download " + " ".join(PIP_PACKAGES))
            _install_wheels(root, _pip_download(work / "wheels", log))
            kvers = sorted(p.name for p in (root / "lib/modules").iterdir())
            if not kvers:
                raise BuildError("no kernel installed in root")
            kver = kvers[-1]
            _log(f"kernel {kver}: extracting vmlinux, building initramfs")
            _extract_vmlinux(root / "boot" / f"vmlinuz-{kver}", work / "vmlinux", root)
            _build_initrd(root, kver, work / "initrd.gz", st.initrd_modules)
            _log("building guest ext4 image")
            _make_guest_image(root, work, work / "guest.img", log)
            for m in (CH_IMG, CH_RUN, CH_SHARE):
                (root / m.lstrip("/")).mkdir(parents=True, exist_ok=True)
            (work / "kernel-version").write_text(kver + "\n")
            (work / "manifest.json").write_text(
                json.dumps(
                    {
                        "key": cache_key(st),
                        "stack": st.name,
                        "kernel": kver,
                        "suite": SUITE,
                        "packages": list(st.packages),
                        "apt_install": list(st.apt_install),
                        "versions": versions,
                        "pip": PIP_PACKAGES,
                        "build_seconds": round(time.monotonic() - t0, 1),
                    },
                    indent=1,
                )
                + "\n"
            )
            shutil.rmtree(work / "wheels", ignore_errors=True)
        except BaseException:
            # keep build.log for diagnosis, drop the (large) partial trees
            _safe_rmtree(work / "root")
            _safe_rmtree(work / "guest-tree")
            raise
        (work / "DONE").write_text("ok\n")
        if final.exists():
            _safe_rmtree(final)
        os.rename(work, final)
        # drop this stack's images built from other inputs (other stacks stay)
        for old in cache.glob("img-*"):
            if old != final and image_stack(old) in (st.name, "?"):
                _safe_rmtree(old)
        for old in cache.glob("tmp-*"):
            _safe_rmtree(old)
        if not quiet:
            _log(f"built {final} in {time.monotonic() - t0:.0f}s")
        return final


# --------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------
def _guest_share_path(share: Path) -> str:
    s = str(share)
    bad = (
        "/proc",
        "/sys",
        "/dev",
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/etc",
        "/mnt/ctl",
        "/tmp",
        "/run",
        "/var",
        "/root",
        "/boot",
    )
    if s == "/" or any(s == b or s.startswith(b + "/") for b in bad):
        return "/mnt/share"
    return s


def _qemu_args(img: Path, devices: list[str], console: str, mem: str) -> list[str]:
    a = [
        "qemu-system-x86_64",
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        f"file:{console}",
        "-accel",
        "tcg",
        "-cpu",
        "max,hypervisor=off",
        "-smp",
        "2",
        "-M",
        "q35,cxl=on",
        "-m",
        f"{mem},maxmem=8G,slots=8",
        "-kernel",
        f"{CH_IMG}/vmlinux",
        "-initrd",
        f"{CH_IMG}/initrd.gz",
        "-append",
        "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init 8250.nr_uarts=1 random.trust_cpu=on",
        "-drive",
        f"file={CH_IMG}/guest.img,format=raw,if=none,id=root,snapshot=on",
        "-device",
        "virtio-blk-pci,drive=root",
        "-virtfs",
        f"local,path={CH_RUN}/ctl,mount_tag=ctl,security_model=none,id=ctl",
        "-virtfs",
        f"local,path={CH_SHARE},mount_tag=share,security_model=none,readonly=on,id=share",
    ]
    if devices:
        a += ["-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1"]
    for i, kind in enumerate(devices):
        a += [
            "-object",
            f"memory-backend-file,id=cxl-mem{i},share=on,"
            f"mem-path={CH_RUN}/mem{i}.raw,size={DEV_SIZE}",
            "-device",
            f"cxl-rp,port={i},bus=cxl.1,id=root_port{13 + i},chassis=0,slot={2 + i}",
        ]
        sn = f"0x{0x1234 + i:x}"
        if kind == "pmem":
            a += [
                "-object",
                f"memory-backend-file,id=cxl-lsa{i},share=on,"
                f"mem-path={CH_RUN}/lsa{i}.raw,size={DEV_SIZE}",
                "-device",
                f"cxl-type3,bus=root_port{13 + i},persistent-memdev=cxl-mem{i},"
                f"lsa=cxl-lsa{i},id=cxl-pmem{i},sn={sn}",
            ]
        else:
            a += [
                "-device",
                f"cxl-type3,bus=root_port{13 + i},volatile-memdev=cxl-mem{i},"
                f"id=cxl-vmem{i},sn={sn}",
            ]
    if devices:
        a += ["-M", "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G"]
    return a


def _check_devices(devices: list[str] | tuple[str, ...]) -> list[str]:
    devs = [d.strip() for d in devices if d.strip()]
    for d in devs:
        if d not in DEVICE_KINDS:
            raise ValueError(f"unknown device kind {d!r} (want one of {DEVICE_KINDS})")
    return devs


def prepare_run(
    run: Path,
    cmd: str,
    devices: list[str],
    img: Path,
    share: str | os.PathLike[str] | None = None,
    bind_timeout: int = 60,
    env: dict[str, str] | None = None,
    mem: str = "4G",
    stack: str | Stack | None = None,
    files: dict[str, str | os.PathLike[str]] | None = None,
) -> list[str]:
    """Populate run dir `run` and return the host argv that boots the VM.

    After the VM powers off, run/ctl holds stdout, stderr, rc, status,
    ready (guest uptime when bound) and run/console.log the serial log.
    The guest command sees CXLCTL_VM_STACK (the stack's name) in its
    environment; `files` (name -> host path) are copied to /mnt/ctl/NAME.
    """
    st = get_stack(stack)
    env = {"CXLCTL_VM_STACK": st.name, **(env or {})}
    root = img / "root"
    share_path = Path(share if share is not None else REPO_ROOT).resolve()
    if not share_path.is_dir():
        raise ValueError(f"share {share_path} is not a directory")
    guest_share = _guest_share_path(share_path)
    ctl = run / "ctl"
    ctl.mkdir(parents=True)
    for name, src in (files or {}).items():
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad file name {name!r} for the ctl share")
        shutil.copy2(src, ctl / name)
    (ctl / "agent.sh").write_text(GUEST_AGENT)
    (ctl / "cmd.sh").write_text(
        "".join(f"export {k}={shlex.quote(v)}\n" for k, v in (env or {}).items())
        + "exec sh -c "
        + shlex.quote(cmd)
        + "\n"
    )
    (ctl / "config.sh").write_text(
        f"NDEV={len(devices)}\nBIND_TIMEOUT={int(bind_timeout)}\n"
        f"SHARE_GUEST={shlex.quote(guest_share)}\nSHARE_RO=,ro\n"
    )
    for i, kind in enumerate(devices):  # fresh sparse zeroed backing files
        for f in [f"mem{i}.raw"] + ([f"lsa{i}.raw"] if kind == "pmem" else []):
            with open(run / f, "wb") as fh:
                fh.truncate(256 * 2**20)
    (run / "tmp").mkdir()  # QEMU's TMPDIR (snapshot=on overlay lives here)
    qemu = _qemu_args(img, devices, f"{CH_RUN}/console.log", mem)
    script = (
        "set -e\n"
        "mount --make-rprivate /\n"
        f"R={shlex.quote(str(root))}\n"
        'mount --rbind /dev "$R/dev"\n'
        'mount -t proc proc "$R/proc"\n'
        'mount --rbind /sys "$R/sys"\n'
        f'mount --bind {shlex.quote(str(img))} "$R{CH_IMG}"\n'
        f'mount --bind {shlex.quote(str(run))} "$R{CH_RUN}"\n'
        f'mount --bind {shlex.quote(str(share_path))} "$R{CH_SHARE}"\n'
        f'exec chroot "$R" env -i PATH=/usr/bin:/usr/sbin TMPDIR={CH_RUN}/tmp '
        + shlex.join(qemu)
        + "\n"
    )
    return ["unshare", "--mount", "sh", "-c", script]


def run_in_vm(
    cmd: str,
    devices: list[str] | tuple[str, ...] = ("pmem",),
    timeout: float = 600,
    share: str | os.PathLike[str] | None = None,
    bind_timeout: int = 60,
    env: dict[str, str] | None = None,
    mem: str = "4G",
    build: bool = True,
    stack: str | Stack | None = None,
    files: dict[str, str | os.PathLike[str]] | None = None,
) -> VmResult:
    """Boot a fresh VM with the given CXL devices and run `cmd` via `sh -c`.

    devices: list of "pmem" / "ram"; serials 0x1234, 0x1235, ... in order
    (memN numbering in the guest follows async probe order, not this list).
    timeout: seconds for the whole VM run (boot + command), excluding build.
    env: extra environment variables for the guest command.
    Never raises for guest or VM failures: infrastructure problems are
    reported via VmResult.infra_error and an EXIT_* returncode.  Raises
    BuildError/FetchError if the image cannot be built (build=True builds
    it on demand), ValueError for bad arguments.
    stack: "6.12" (default, or $CXLCTL_VM_STACK) or "7.3"; the guest command
    gets CXLCTL_VM_STACK set to it.  files: copied to /mnt/ctl/NAME in the guest.
    """
    t0 = time.monotonic()
    devices = _check_devices(devices)
    st = get_stack(stack)
    if build:
        img = build_image(quiet=True, stack=st)
    else:
        img = image_dir(st)
        if not (img / "DONE").exists():
            raise BuildError("image not built; run `cxlvm.py build`")
    base_tmp = os.environ.get("CXLCTL_VM_RUNDIR") or None
    with tempfile.TemporaryDirectory(prefix="cxlvm-run-", dir=base_tmp) as rd:
        run = Path(rd)
        ctl = run / "ctl"
        argv = prepare_run(run, cmd, devices, img, share, bind_timeout, env, mem, st, files)
        console = run / "console.log"
        qlog = run / "qemu.log"
        boot_s = None
        timed_out = False
        tq = time.monotonic()
        with open(qlog, "wb") as ql:
            p = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=ql, stderr=ql, start_new_session=True
            )
            try:
                while True:
                    try:
                        p.wait(timeout=0.1)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    if boot_s is None and (ctl / "ready").exists():
                        boot_s = time.monotonic() - tq
                    if time.monotonic() - tq > timeout:
                        timed_out = True
                        break
            finally:
                if p.poll() is None:  # timeout or KeyboardInterrupt: kill the VM
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, 9)
                    p.wait()
        if boot_s is None and (ctl / "ready").exists():
            boot_s = time.monotonic() - tq

        def rd_text(name: str) -> str:
            f = ctl / name
            return f.read_bytes().decode("utf-8", "surrogateescape") if f.exists() else ""

        status = rd_text("status").strip()
        cons = console.read_text(errors="replace")[-8000:] if console.exists() else ""
        ready_up = rd_text("ready").strip()
        res = VmResult(
            0,
            rd_text("stdout"),
            rd_text("stderr"),
            boot_s,
            0.0,
            float(ready_up) if ready_up else None,
            None,
            cons,
        )
        rc_txt = rd_text("rc").strip()
        if timed_out:
            res.returncode, res.infra_error = EXIT_TIMEOUT, f"timeout after {timeout}s"
        elif rc_txt:
            res.returncode = int(rc_txt)
        elif status.startswith("not-bound"):
            res.returncode = EXIT_NOT_BOUND
            res.infra_error = f"CXL memdevs not bound ({status}): " + rd_text("bind-debug")[-3000:]
        else:
            res.returncode = EXIT_INFRA
            res.infra_error = (
                f"VM gave no result (qemu rc={p.returncode}, "
                f"status={status!r}): " + qlog.read_text(errors="replace")[-2000:]
            )
        res.wall_seconds = time.monotonic() - t0
        return res


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------
def _parse_devices(s: str) -> list[str]:
    devs = [d.strip() for d in s.split(",") if d.strip()] if s else []
    for d in devs:
        if d not in DEVICE_KINDS:
            raise argparse.ArgumentTypeError(f"bad device kind {d!r}; use pmem or ram")
    return devs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cxlvm.py", description=(__doc__ or "").split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    stack_help = (
        f"kernel stack: {', '.join(f'{k} ({v.title})' for k, v in STACKS.items())} "
        f"[default: $CXLCTL_VM_STACK or {DEFAULT_STACK}]"
    )
    b = sub.add_parser("build", help="build or refresh the cached VM image")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    b.add_argument("--stack", choices=list(STACKS), default=None, help=stack_help)
    k = sub.add_parser("key", help="print the cache key and image directory")
    k.add_argument("--stack", choices=list(STACKS), default=None, help=stack_help)
    for name in ("run", "shell-cmd"):
        sp = sub.add_parser(
            name,
            help="boot a VM and run CMD"
            if name == "run"
            else "prepare a kept run dir and print the host command that boots it (debugging)",
        )
        sp.add_argument("--stack", choices=list(STACKS), default=None, help=stack_help)
        sp.add_argument(
            "--devices",
            type=_parse_devices,
            default=["pmem"],
            help="comma list of pmem|ram (default: pmem); '' for none",
        )
        sp.add_argument(
            "--share", default=None, help="host dir shared read-only (default: repo root)"
        )
        sp.add_argument("--timeout", type=float, default=600, help="seconds for the whole run")
        sp.add_argument(
            "--bind-timeout",
            type=int,
            default=60,
            help="seconds to wait in the guest for memdevs to bind",
        )
        sp.add_argument("-v", "--verbose", action="store_true", help="report timings/console")
        sp.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "build":
            t0 = time.monotonic()
            d = build_image(force=a.force, stack=a.stack)
            _log(f"image ready: {d} ({time.monotonic() - t0:.1f}s)")
            return 0
        if a.cmd == "key":
            print(cache_key(a.stack), image_dir(a.stack))
            return 0
        cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
        if not cmd:
            ap.error("missing CMD after --")
        cmdline = " ".join(cmd)
        if a.cmd == "shell-cmd":
            img = build_image(quiet=True, stack=a.stack)
            run = Path(
                tempfile.mkdtemp(
                    prefix="cxlvm-manual-", dir=os.environ.get("CXLCTL_VM_RUNDIR") or None
                )
            )
            argv = prepare_run(run, cmdline, a.devices, img, a.share, a.bind_timeout, stack=a.stack)
            print(
                f"# run dir {run}: results in ctl/{{stdout,stderr,rc}}, serial log in "
                f"console.log; delete it afterwards",
                file=sys.stderr,
            )
            print(shlex.join(argv))
            return 0
        r = run_in_vm(cmdline, a.devices, a.timeout, a.share, a.bind_timeout, stack=a.stack)
        # byte-exact passthrough (VmResult text is decoded with surrogateescape)
        sys.stdout.buffer.write(r.stdout.encode("utf-8", "surrogateescape"))
        sys.stdout.flush()
        sys.stderr.buffer.write(r.stderr.encode("utf-8", "surrogateescape"))
        sys.stderr.flush()
    except ValueError as e:
        print(f"cxlvm: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except FetchError as e:
        print(f"CXLVM-SKIP: cannot fetch VM packages: {e}", file=sys.stderr, flush=True)
        return EXIT_FETCH_FAILED
    except BuildError as e:
        print(f"CXLVM-ERROR: image build failed: {e}", file=sys.stderr, flush=True)
        return e.code
    if r.infra_error:
        _log(f"INFRA FAILURE (exit {r.returncode}): {r.infra_error}")
        _log("console tail:\n" + r.console[-3000:])
    if a.verbose or r.infra_error:
        bs = f"{r.boot_seconds:.1f}s" if r.boot_seconds is not None else "n/a"
        _log(f"boot->ready {bs}, total {r.wall_seconds:.1f}s, rc {r.returncode}")
    sys.stderr.flush()
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
