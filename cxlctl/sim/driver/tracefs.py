"""The simulated kernel's own use of the mailbox: poison listing, event logs, tracefs.

Linux runs Get Poison List and Get/Clear Event Records itself and reports the
records as trace events.  :class:`SimTracing` does the same against simulated
devices (through the device's mailbox, as the driver's internal commands do, not
through the ioctl) and writes the very text lines the kernel's ``TP_printk``
would into a simulated trace buffer; :mod:`cxlctl.tracefs` parses them exactly
as it parses a real ``/sys/kernel/tracing/trace``.  It has the interface of
:class:`cxlctl.tracefs.KernelTracing`.

* ``trigger_poison_list``: ``cxl_get_poison_by_memdev()``: pmem partition first,
  then ram, each paged while the device says More (``cxl_mem_get_poison()``),
  stopping at the device's maximum or on overflow.
* event logs: ``cxl_mem_get_event_records()`` at probe: for each log, Get Event
  Records, trace each record (and ``cxl_overflow``), Clear Event Records by handle,
  until the log is empty.
* debugfs ``inject_poison``/``clear_poison``: the mailbox command, then a
  ``cxl_poison`` event of trace type Inject/Clear.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ... import mailbox as mb
from ... import tracefs as tf
from ...errors import MailboxError, UnsupportedCommand
from ...mailbox import layouts as lay
from ...mailbox import return_code_name
from ...mailbox.events import decode_event_records
from ...mailbox.media import decode_poison_list
from ...mailbox.names import POISON_LEN_MULT, PoisonSource

if TYPE_CHECKING:
    from .. import SimDevice

#: The simulated trace clock starts here (seconds since boot) and ticks 1 us per event.
_BOOT_NS = 5_000_000_000


class SimTracing:
    """A simulated kernel's tracefs, sysfs trigger and debugfs over simulated devices."""

    def __init__(self, devices: Mapping[str, SimDevice]) -> None:
        self.devices = devices
        self.buffer: list[str] = []
        self._clock = itertools.count(_BOOT_NS, 1000)
        self._probed = False

    def _emit(self, event: str, body: str) -> str:
        line = tf.trace_line(event, body, next(self._clock))
        self.buffer.append(line)
        return line

    def _mbox(self, dev: SimDevice, opcode: int, payload: bytes) -> bytes:
        rc, out = dev.device.execute(opcode, payload)
        if rc:
            raise MailboxError(
                f"{dev.name}: opcode {opcode:#06x}: device returned {return_code_name(rc)}", rc
            )
        return out

    @staticmethod
    def _ident(dev: SimDevice) -> tuple[str, str, int]:
        return dev.name, dev.config.host, dev.config.serial

    # -- poison (trigger_poison_list, cxl_mem_get_poison) --
    def trigger_poison_list(self, memdev: str, host: str = "") -> list[dict[str, Any]]:
        self._probe()
        dev = self.devices[memdev]
        if mb.GET_POISON_LIST.opcode not in dev.device.cel:
            raise UnsupportedCommand(
                f"{memdev}: /sys/bus/cxl/devices/{memdev}/trigger_poison_list is missing: "
                "the device does not support Get Poison List",
            )
        c = dev.config
        lines: list[str] = []
        parts = []
        if c.persistent_bytes:
            parts.append((c.volatile_bytes, c.persistent_bytes))
        if c.volatile_bytes:
            parts.append((0, c.volatile_bytes))
        max_errors = 256  # Identify: Poison List Maximum Media Error Records
        for offset, length in parts:
            payload = bytes(lay.PoisonListIn(address=offset, length=length // POISON_LEN_MULT))
            n = 0
            while True:
                po = decode_poison_list(self._mbox(dev, mb.GET_POISON_LIST.opcode, payload))
                for r in po.records:
                    body = tf.format_poison(
                        *self._ident(dev),
                        dpa=r.dpa,
                        length=r.length,
                        source=r.source_name,
                        flags=po.flags,
                        overflow_ts=po.overflow_timestamp,
                    )
                    lines.append(self._emit("cxl_poison", body))
                n += len(po.records)
                if n >= max_errors or not po.more_media_error_records:
                    break
        events = [e for e in map(tf.parse_line, lines) if e]
        return events

    def debugfs_poison(self, memdev: str, action: str, dpa: int) -> None:
        self._probe()
        dev = self.devices[memdev]
        inject = action == "inject_poison"
        opcode = (mb.INJECT_POISON if inject else mb.CLEAR_POISON).opcode
        if opcode not in dev.device.cel:
            raise UnsupportedCommand(
                f"{memdev}: /sys/kernel/debug/cxl/{memdev}/{action} is missing: the device "
                f"does not support {action.replace('_', ' ').title()}"
            )
        if inject:
            payload = bytes(lay.InjectPoisonIn(address=dpa))
        else:
            payload = bytes(lay.ClearPoisonIn(address=dpa))
        self._mbox(dev, opcode, payload)
        body = tf.format_poison(
            *self._ident(dev),
            dpa=dpa,
            length=64,
            source=(PoisonSource.INJECTED if inject else PoisonSource.UNKNOWN).spec_name,
            flags=0,
            overflow_ts=0,
            trace_type="Inject" if inject else "Clear",
        )
        self._emit("cxl_poison", body)

    # -- EINJ (drivers/cxl/core/port.c: cxl/einj_types, cxl/DPORT/einj_inject) --
    def einj_types(self) -> str | None:
        """None: the simulated platform is QEMU's, whose ACPI tables have no EINJ, so
        Linux creates neither einj_types nor any dport's einj_inject."""
        return None

    def einj_inject(self, dport: str, error_type: int) -> None:
        raise UnsupportedCommand(
            f"{dport}: /sys/kernel/debug/cxl/{dport}/einj_inject is missing: the platform "
            "offers no EINJ"
        )

    # -- event logs (cxl_mem_get_event_records) --
    def drain_event_logs(self) -> None:
        """What the driver does at probe and on each event interrupt."""
        for dev in self.devices.values():
            if mb.GET_EVENT_RECORDS.opcode not in dev.device.cel:
                continue
            for log in range(4):
                self._drain(dev, log)

    def _drain(self, dev: SimDevice, log: int) -> None:
        while True:
            rc, out = dev.device.execute(mb.GET_EVENT_RECORDS.opcode, bytes([log]))
            if rc:
                return
            payload = decode_event_records(out)
            if not payload.records:
                return
            for rec in payload.records:
                event, body = tf.format_event_record(*self._ident(dev), log, rec)
                self._emit(event, body)
            if payload.overflow:
                self._emit(
                    "cxl_overflow",
                    tf.format_overflow(
                        *self._ident(dev),
                        log,
                        payload.overflow_error_count,
                        payload.first_overflow_timestamp,
                        payload.last_overflow_timestamp,
                    ),
                )
            handles = [r.header.handle for r in payload.records]
            clear = bytes(lay.ClearEventRecordsIn(event_log=log, count=len(handles)))
            clear += b"".join(h.to_bytes(2, "little") for h in handles)
            if dev.device.execute(mb.CLEAR_EVENT_RECORDS.opcode, clear)[0]:
                return

    def _probe(self) -> None:
        if not self._probed:
            self._probed = True
            self.drain_event_logs()

    def snapshot(self) -> list[dict[str, Any]]:
        self._probe()
        return [e for e in map(tf.parse_line, self.buffer) if e]

    def stream(
        self, *, stop: Callable[[], bool], poll_interval: float = 0.2
    ) -> Iterator[dict[str, Any]]:
        """Everything logged so far, then whatever the devices log next, until ``stop()``."""
        self._probe()
        seen = 0
        while not stop():
            self.drain_event_logs()  # an event interrupt
            while seen < len(self.buffer):
                ev = tf.parse_line(self.buffer[seen])
                seen += 1
                if ev:
                    yield ev
                    if stop():
                        return
            time.sleep(poll_interval)
