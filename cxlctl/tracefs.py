"""What Linux offers for poison and events: sysfs triggers, debugfs, and tracefs.

Linux has no ioctl command id for Get Poison List or Get Event Records.  The
driver runs them itself and reports every record as a trace event
(``drivers/cxl/core/trace.h``): writing ``1`` to
``/sys/bus/cxl/devices/memN/trigger_poison_list`` makes it page through Get Poison
List and emit one ``cxl_poison`` event per record; event records read at probe
and on interrupts become ``cxl_general_media``, ``cxl_dram``,
``cxl_memory_module``, ``cxl_generic_event`` and ``cxl_overflow`` events.
Poison is injected and cleared through debugfs (``/sys/kernel/debug/cxl/memN/
inject_poison``, ``clear_poison``).  cxl-cli's ``list -L`` and ``monitor`` read
the same events; so does cxlctl.

This module knows the text format of those events both ways: :func:`parse_line`
reads a line of ``trace``/``trace_pipe``, and the ``format_*`` functions write
the ``TP_printk`` text the kernel would (the simulator uses them, so the same
parser runs on both backends).  :class:`KernelTracing` does the file work on a
real system, with every failure turned into a :class:`~cxlctl.errors.CxlError`
that says which file and why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from .errors import CxlError, PermissionDenied, UnsupportedCommand, from_errno
from .mailbox.names import LOG_TRACE_NAMES, PoisonFlag

TRACEFS_ROOTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
DEBUGFS_CXL = "/sys/kernel/debug/cxl"
#: A trace buffer read at once is bounded (the per-CPU buffers are ~1.4 MiB each).
TRACE_MAX = 256 << 20
#: A trace line is at most a page or so; longer without a newline is not one.
LINE_MAX = 64 << 10
CXL_EVENTS = (
    "cxl_poison",
    "cxl_general_media",
    "cxl_dram",
    "cxl_memory_module",
    "cxl_generic_event",
    "cxl_overflow",
    "cxl_aer_uncorrectable_error",
    "cxl_aer_correctable_error",
)
RECORD_EVENTS = ("cxl_general_media", "cxl_dram", "cxl_memory_module", "cxl_generic_event")

#: ``show_poison_flags``: the flag names of a cxl_poison event, in bit order
_POISON_FLAGS: dict[str, PoisonFlag] = {f.trace_name: f for f in PoisonFlag}
#: cxl-cli's order of the flags in ``media_errors``
_LIST_FLAG_ORDER = (PoisonFlag.MORE, PoisonFlag.SCANNING, PoisonFlag.OVERFLOW)

# --- parsing -------------------------------------------------------------------------

_LINE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<irq>[^\s\d][^\s]*)\s+)?(?P<sec>\d+)\.(?P<frac>\d+):\s+"
    r"(?P<event>\w+):\s+(?P<body>.*)$"
)
_KEY = re.compile(r"(?:^|(?<=\s))(\w+)=")
_OVERFLOW = re.compile(r"(\d+) records from (\d+) to (\d+)")
#: fields the kernel prints with %x/%llx (no 0x prefix)
_HEX = frozenset({"dpa", "hpa", "device", "handle", "related_handle", "nibble_mask", "dpa_length"})
#: the common event header's printed names -> its TP_STRUCT field names (as cxl monitor)
_HDR_RENAME = {
    "time": "hdr_timestamp",
    "uuid": "hdr_uuid",
    "len": "hdr_length",
    "flags": "hdr_flags",
    "handle": "hdr_handle",
    "related_handle": "hdr_related_handle",
    "maint_op_class": "hdr_maint_op_class",
    "maint_op_sub_class": "hdr_maint_op_sub_class",
}


def _value(key: str, raw: str) -> Any:
    v = raw.strip()
    if len(v) >= 2 and v[0] == v[-1] == "'":
        return v[1:-1]
    if key in _HEX and re.fullmatch(r"(0x)?[0-9a-fA-F]+", v):
        return int(v, 16)
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    return v


def parse_body(event: str, body: str) -> dict[str, Any]:
    """The ``key=value`` text of one event -> a dict of fields (ints where numeric)."""
    out: dict[str, Any] = {}
    keys = list(_KEY.finditer(body))
    for i, m in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(body)
        raw = body[m.end() : end].strip()
        rest = ""
        if " : " in raw or raw.endswith(":"):
            raw, _, rest = raw.partition(":") if raw.endswith(":") else raw.partition(" : ")
        out[m.group(1)] = _value(m.group(1), raw.rstrip(":"))
        if rest.strip() and i + 1 == len(keys):
            out["data"] = rest.strip()
    if event == "cxl_overflow":
        m2 = _OVERFLOW.search(body)
        if m2:
            out["count"], out["first_ts"], out["last_ts"] = (int(g) for g in m2.groups())
    elif "uuid" in out and event != "cxl_poison":
        out = {_HDR_RENAME.get(k, k): v for k, v in out.items()}
        if event in ("cxl_general_media", "cxl_dram") and "region" in out:
            out["region_name"] = out.pop("region")
    if event == "cxl_poison" and "overflow_time" in out:
        out["overflow_ts"] = out.pop("overflow_time")
    return out


def parse_line(line: str) -> dict[str, Any] | None:
    """One line of ``trace``/``trace_pipe`` -> ``{"system", "event", "timestamp", fields...}``.

    Comment lines, other systems' events and unparsable lines give None.
    """
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    m = _LINE.match(line.rstrip("\n"))
    if not m or not m.group("event").startswith("cxl_"):
        return None
    frac = (m.group("frac") + "000000000")[:9]
    ts = int(m.group("sec")) * 1_000_000_000 + int(frac)
    ev = m.group("event")
    return {"system": "cxl", "event": ev, "timestamp": ts, **parse_body(ev, m.group("body"))}


def poison_flags(text: Any) -> int:
    """``More|Overflow`` (``show_poison_flags``) -> the flag bits."""
    return sum(int(_POISON_FLAGS[p]) for p in str(text or "").split("|") if p in _POISON_FLAGS)


def media_error_json(ev: dict[str, Any]) -> dict[str, Any]:
    """A ``cxl_poison`` event as one ``media_errors`` entry of ``cxl list -L``."""
    d: dict[str, Any] = {"offset": ev.get("dpa", 0), "length": ev.get("dpa_length", 0)}
    d["source"] = ev.get("source", "Unknown")
    flags = poison_flags(ev.get("flags"))
    if flags:
        d["flags"] = "".join(f"{f.trace_name}," for f in _LIST_FLAG_ORDER if flags & f)
    if flags & PoisonFlag.OVERFLOW:
        d["overflow_t"] = ev.get("overflow_ts", 0)
    return d


# --- formatting (the kernel's TP_printk) ---------------------------------------------


def trace_line(event: str, body: str, ts_ns: int, task: str = "kworker/u8:1", pid: int = 88,
               cpu: int = 0) -> str:  # fmt: skip
    """A line as ``/sys/kernel/tracing/trace`` prints it."""
    head = f"{task}-{pid}"
    return (
        f"{head:>22} [{cpu:03d}] ..... {ts_ns // 1_000_000_000:5d}."
        f"{ts_ns % 1_000_000_000 // 1000:06d}: {event}: {body}\n"
    )


def format_poison(memdev: str, host: str, serial: int, *, dpa: int, length: int, source: str,
                  flags: int, overflow_ts: int, trace_type: str = "List") -> str:  # fmt: skip
    """``cxl_poison`` (no region: region empty, null UUID, hpa ULLONG_MAX)."""
    fl = "|".join(n for n, f in _POISON_FLAGS.items() if flags & f)
    return (
        f"memdev={memdev} host={host} serial={serial} trace_type={trace_type} region= "
        f"region_uuid=00000000-0000-0000-0000-000000000000 hpa=0xffffffffffffffff "
        f"dpa={dpa:#x} dpa_length={length:#x} source={source} flags={fl} "
        f"overflow_time={overflow_ts if flags & PoisonFlag.OVERFLOW else 0}"
    )


def _flags(names: tuple[str, ...], sep: str = "|") -> str:
    return sep.join(names)


def _hexbytes(h: str) -> str:
    return " ".join(h[i : i + 2] for i in range(0, len(h), 2))


def format_event_header(memdev: str, host: str, serial: int, log: int, hdr: Any) -> str:
    """``CXL_EVT_TP_printk``'s common part, for a decoded :class:`EventHeader`."""
    return (
        f"memdev={memdev} host={host} serial={serial} log={LOG_TRACE_NAMES.get(log, log)} : "
        f"time={hdr.timestamp} uuid={hdr.uuid} len={hdr.length} "
        f"flags='{_flags(hdr.flag_names[:5], ' | ')}' handle={hdr.handle:x} "
        f"related_handle={hdr.related_handle:x} maint_op_class={hdr.maint_op_class} "
        f"maint_op_sub_class={hdr.maint_op_sub_class} : "
    )


def _pldm(rec: Any) -> str:
    c = rec.component_id
    valid = c.pldm_format
    first = int(c.raw[:2], 16)
    fl = " | ".join(n for b, n in ((0, "PLDM Entity ID"), (1, "Resource ID")) if first & (1 << b))
    ent = _hexbytes(c.pldm_entity_id) if valid and c.pldm_entity_id else "0x00"
    res = _hexbytes(c.pldm_resource_id) if valid and c.pldm_resource_id else "0x00"
    return (
        f"comp_id={_hexbytes(c.raw)} comp_id_pldm_valid_flags='{fl}' "
        f"pldm_entity_id={ent} pldm_resource_id={res}"
    )


def format_event_record(memdev: str, host: str, serial: int, log: int, rec: Any) -> tuple[str, str]:
    """(event name, body) for a decoded event record, as the driver traces it."""
    head = format_event_header(memdev, host, serial, log, rec.header)
    kind = rec.header.record_type
    if kind == "general_media":
        return "cxl_general_media", head + (
            f"dpa={rec.dpa:x} dpa_flags='{_flags(rec.dpa_flag_names)}' "
            f"descriptor='{_flags(rec.descriptor_names)}' type='{rec.type_name}' "
            f"sub_type='{rec.sub_type_name}' transaction_type='{rec.transaction_type_name}' "
            f"channel={rec.channel} rank={rec.rank} device={rec.device:x} "
            f"validity_flags='{_flags(rec.validity_names)}' {_pldm(rec)} "
            f"hpa=ffffffffffffffff region= region_uuid=00000000-0000-0000-0000-000000000000 "
            f"cme_threshold_ev_flags='{_flags(rec.cme_threshold_ev_names)}' "
            f"cme_count={rec.cme_count}"
        )
    if kind == "dram":
        return "cxl_dram", head + (
            f"dpa={rec.dpa:x} dpa_flags='{_flags(rec.dpa_flag_names)}' "
            f"descriptor='{_flags(rec.descriptor_names)}' type='{rec.type_name}' "
            f"sub_type='{rec.sub_type_name}' transaction_type='{rec.transaction_type_name}' "
            f"channel={rec.channel} rank={rec.rank} nibble_mask={rec.nibble_mask:x} "
            f"bank_group={rec.bank_group} bank={rec.bank} row={rec.row} column={rec.column} "
            f"cor_mask={_hexbytes(rec.correction_mask)} "
            f"validity_flags='{_flags(rec.validity_names)}' {_pldm(rec)} "
            f"hpa=ffffffffffffffff region= region_uuid=00000000-0000-0000-0000-000000000000 "
            f"sub_channel={rec.sub_channel} "
            f"cme_threshold_ev_flags='{_flags(rec.cme_threshold_ev_names)}' "
            f"cvme_count={rec.cvme_count}"
        )
    if kind == "memory_module":
        h = rec.health
        return "cxl_memory_module", head + (
            f"event_type='{rec.event_type_name}' event_sub_type='{rec.event_sub_type_name}' "
            f"health_status='{_flags(h.health_status_names)}' "
            f"media_status='{h.media_status_name}' as_life_used={h.life_used_status} "
            f"as_dev_temp={h.device_temperature_status} "
            f"as_cor_vol_err_cnt={h.corrected_volatile_error_count_status} "
            f"as_cor_per_err_cnt={h.corrected_persistent_error_count_status} "
            f"life_used={h.life_used} device_temp={h.device_temperature} "
            f"dirty_shutdown_cnt={h.dirty_shutdown_count} "
            f"cor_vol_err_cnt={h.corrected_volatile_error_count} "
            f"cor_per_err_cnt={h.corrected_persistent_error_count} "
            f"validity_flags='{_flags(rec.validity_names)}' {_pldm(rec)}"
        )
    return "cxl_generic_event", head + _hexbytes(rec.data)


def format_overflow(memdev: str, host: str, serial: int, log: int, count: int, first: int,
                    last: int) -> str:  # fmt: skip
    return (
        f"memdev={memdev} host={host} serial={serial}: log={LOG_TRACE_NAMES.get(log, log)} : "
        f"{count} records from {first} to {last}"
    )


# --- the kernel's files ---------------------------------------------------------------


class Tracing(Protocol):
    """The kernel-side mechanisms a backend offers (:class:`KernelTracing` or the
    simulator's ``SimTracing``)."""

    def trigger_poison_list(self, memdev: str, host: str) -> list[dict[str, Any]]: ...

    def debugfs_poison(self, memdev: str, action: str, dpa: int) -> None: ...

    def einj_types(self) -> str | None: ...

    def einj_inject(self, dport: str, error_type: int) -> None: ...

    def snapshot(self) -> list[dict[str, Any]]: ...

    def stream(
        self, *, stop: Callable[[], bool], poll_interval: float = 0.2
    ) -> Iterator[dict[str, Any]]: ...


class KernelTracing:
    """sysfs/debugfs/tracefs on a real system.  Paths are parameters so tests can point
    them at a temporary tree; :meth:`write` and :meth:`read` are the only file access."""

    def __init__(
        self,
        sysfs_root: str,
        tracefs_root: str | None = None,
        debugfs_cxl: str = DEBUGFS_CXL,
    ) -> None:
        self.sysfs_root = sysfs_root
        self._tracefs = tracefs_root
        self.debugfs_cxl = debugfs_cxl

    # -- file primitives (errors become CxlErrors naming the file) --
    def write(self, path: str, text: str) -> None:
        try:
            with open(path, "w") as f:
                f.write(text)
        except OSError as e:
            raise self._error(e, f"cannot write {text.strip()!r} to {path}") from e

    def read(self, path: str) -> str:
        """A tracefs file as text: read as bytes, undecodable bytes (a device's strings
        are printed unfiltered) kept as ``\\xff`` escapes; never more than
        :data:`TRACE_MAX` bytes."""
        try:
            with open(path, "rb") as f:
                data = f.read(TRACE_MAX + 1)
        except OSError as e:
            raise self._error(e, f"cannot read {path}") from e
        if len(data) > TRACE_MAX:
            raise CxlError(f"{path}: more than {TRACE_MAX >> 20} MiB of trace data")
        return data.decode("utf-8", "backslashreplace")

    @staticmethod
    def _error(e: OSError, what: str) -> CxlError:
        err = e.errno or errno.EIO
        if err in (errno.EACCES, errno.EPERM):
            return PermissionDenied(f"{what}: permission denied", hint="run as root")
        if err == errno.ENOENT:
            return UnsupportedCommand(f"{what}: no such file")
        return from_errno(err, what)

    @property
    def tracefs(self) -> str:
        """The tracefs mount (``/sys/kernel/tracing``, or the old debugfs place)."""
        if self._tracefs is None:
            for root in TRACEFS_ROOTS:
                if os.path.isdir(os.path.join(root, "events")):
                    self._tracefs = root
                    break
            else:
                if not os.access("/sys/kernel", os.R_OK | os.X_OK) or any(
                    os.path.isdir(r) and not os.access(r, os.R_OK | os.X_OK) for r in TRACEFS_ROOTS
                ):
                    raise PermissionDenied(
                        "tracefs: /sys/kernel/tracing is not readable", hint="run as root"
                    )
                raise UnsupportedCommand(
                    "tracefs is not mounted (looked in /sys/kernel/tracing and "
                    "/sys/kernel/debug/tracing)",
                    hint="mount -t tracefs nodev /sys/kernel/tracing",
                )
        return self._tracefs

    def _require_cxl_events(self, base: str, event: str = "cxl_poison") -> str:
        path = os.path.join(base, "events", "cxl", event)
        if not os.path.isdir(path):
            if not os.access(base, os.R_OK | os.X_OK):
                raise PermissionDenied(f"tracefs: {base} is not readable", hint="run as root")
            raise UnsupportedCommand(
                f"tracefs: this kernel has no cxl:{event} trace event ({path} is missing)",
                hint="is cxl_core loaded? poison listing needs Linux 6.4 or later",
            )
        return path

    # -- an instance of our own, as cxl-cli's "cxl list" does --
    def instance(self, name: str) -> str:
        path = os.path.join(self.tracefs, "instances", name)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise self._error(e, f"cannot create tracefs instance {path}") from e
        return path

    def remove_instance(self, path: str) -> None:
        with contextlib.suppress(OSError):  # rmdir frees a tracefs instance
            os.rmdir(path)

    def trigger_poison_list(self, memdev: str, host: str) -> list[dict[str, Any]]:
        """Enable cxl_poison in a private instance, write ``1`` to trigger_poison_list, read
        the events back, and return this memdev's ``cxl_poison`` events."""
        attr = os.path.join(self.sysfs_root, memdev, "trigger_poison_list")
        if not os.path.exists(attr):
            raise UnsupportedCommand(
                f"{memdev}: {attr} is missing: this kernel cannot list poison, or the "
                "device does not support Get Poison List",
                hint="needs Linux 6.4+ and a device whose CEL lists Get Poison List",
            )
        self._require_cxl_events(self.tracefs)
        inst = self.instance(f"cxlctl-{os.getpid()}")
        try:
            self.write(os.path.join(inst, "trace"), "")  # start from an empty buffer
            enable = os.path.join(inst, "events", "cxl", "cxl_poison", "enable")
            self.write(enable, "1\n")
            try:
                self.write(attr, "1\n")
            finally:
                self.write(enable, "0\n")
            text = self.read(os.path.join(inst, "trace"))
        finally:
            self.remove_instance(inst)
        events = [e for e in map(parse_line, text.splitlines()) if e]
        return [
            e
            for e in events
            if e["event"] == "cxl_poison"
            and e.get("memdev") == memdev
            and e.get("trace_type", "List") == "List"
        ]

    def debugfs_poison(self, memdev: str, action: str, dpa: int) -> None:
        """Write a DPA to debugfs ``inject_poison`` or ``clear_poison``."""
        path = os.path.join(self.debugfs_cxl, memdev, action)
        if not os.path.exists(path):
            if os.path.isdir(os.path.dirname(self.debugfs_cxl)) and not os.access(
                os.path.dirname(self.debugfs_cxl), os.R_OK | os.X_OK
            ):
                raise PermissionDenied(f"{memdev}: debugfs is root-only", hint="run as root")
            raise UnsupportedCommand(
                f"{memdev}: {path} is missing",
                hint="needs debugfs mounted at /sys/kernel/debug, CONFIG_DEBUG_FS, and a "
                f"device that supports {action.replace('_', ' ').title()}",
            )
        self.write(path, f"{dpa:#x}\n")

    def einj_types(self) -> str | None:
        """debugfs ``cxl/einj_types`` (Linux 6.9+, CONFIG_ACPI_APEI_EINJ_CXL, a platform
        with an ACPI EINJ table offering CXL error types); None when the kernel did
        not create it."""
        path = os.path.join(self.debugfs_cxl, "einj_types")
        if not os.path.exists(path):
            self._debugfs_access(os.path.dirname(self.debugfs_cxl), "EINJ")
            return None
        return self.read(path)

    def einj_inject(self, dport: str, error_type: int) -> None:
        """``cxl/DPORT/einj_inject`` <- the error type (one of einj_types')."""
        path = os.path.join(self.debugfs_cxl, dport, "einj_inject")
        if not os.path.exists(path):
            raise UnsupportedCommand(
                f"{dport}: {path} is missing: the kernel made no einj_inject for a dport "
                "of that name",
                hint="a dport is a root port or switch downstream port above a memdev "
                "(`cxlctl list -P -T` shows them)",
            )
        self.write(path, f"{error_type:#x}\n")

    @staticmethod
    def _debugfs_access(debugfs: str, what: str) -> None:
        if os.path.isdir(debugfs) and not os.access(debugfs, os.R_OK | os.X_OK):
            raise PermissionDenied(f"{what}: debugfs ({debugfs}) is root-only", hint="run as root")

    def snapshot(self) -> list[dict[str, Any]]:
        """The cxl events in the global trace buffer, without consuming them."""
        self._require_cxl_events(self.tracefs, "cxl_general_media")
        text = self.read(os.path.join(self.tracefs, "trace"))
        return [e for e in map(parse_line, text.splitlines()) if e]

    def stream(
        self, *, stop: Callable[[], bool], poll_interval: float = 0.2
    ) -> Iterator[dict[str, Any]]:
        """Follow every cxl event through a private instance's ``trace_pipe`` until
        ``stop()`` says so (it is asked at least every ``poll_interval`` seconds)."""
        self._require_cxl_events(self.tracefs)
        inst = self.instance(f"cxlctl-monitor-{os.getpid()}")
        enable = os.path.join(inst, "events", "cxl", "enable")
        try:
            self.write(enable, "1\n")
            try:
                fd = os.open(os.path.join(inst, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
            except OSError as e:
                raise self._error(e, f"cannot open {inst}/trace_pipe") from e
            buf = b""
            try:
                while not stop():
                    ready, _, _ = select.select([fd], [], [], poll_interval)
                    if not ready:
                        continue
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        time.sleep(poll_interval)  # a regular file (tests) at its end
                        continue
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    if len(buf) > LINE_MAX:  # no newline in sight: not a trace line
                        buf = b""
                    for line in lines:
                        ev = parse_line(line.decode("utf-8", "backslashreplace"))
                        if ev:
                            yield ev
            finally:
                os.close(fd)
        finally:
            try:
                self.write(enable, "0\n")
            finally:
                self.remove_instance(inst)
