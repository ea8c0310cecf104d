"""The spec's name tables, each in one place: event logs, poison sources and flags, log UUIDs.

Everything that names these values -- the decoders, the CLI, the tracefs parser and
formatter, the simulated device and the simulated kernel -- imports them from here.
Cheap to import (enums and dicts only): every run loads it.
"""

from __future__ import annotations

import enum

# --- event logs (CXL 3.1 Table 8-49) ---------------------------------------------------


class EventLog(enum.IntEnum):
    """Event Log (Table 8-49): the Get/Clear Event Records log numbers."""

    INFO = 0
    WARN = 1
    FAIL = 2
    FATAL = 3
    DYNAMIC_CAPACITY = 4

    @property
    def cli_name(self) -> str:
        """What users type (``cxlctl events --log warn``)."""
        return _EVENT_LOG_NAMES[self][0]

    @property
    def trace_name(self) -> str:
        """The kernel's name (``cxl_event_log_type_str()``, ``log=Warning`` in tracefs)."""
        return _EVENT_LOG_NAMES[self][1]


_EVENT_LOG_NAMES: dict[EventLog, tuple[str, str]] = {
    EventLog.INFO: ("info", "Informational"),
    EventLog.WARN: ("warn", "Warning"),
    EventLog.FAIL: ("fail", "Failure"),
    EventLog.FATAL: ("fatal", "Fatal"),
    EventLog.DYNAMIC_CAPACITY: ("dcd", "Dynamic Capacity"),
}
#: The four logs Linux 6.12 reads (no dynamic capacity), in order.
EVENT_LOGS: tuple[EventLog, ...] = (EventLog.INFO, EventLog.WARN, EventLog.FAIL, EventLog.FATAL)
#: CLI name -> log (``info``, ``warn``, ``fail``, ``fatal``).
LOG_NAMES: dict[str, EventLog] = {lg.cli_name: lg for lg in EVENT_LOGS}
#: log number -> the kernel's trace name.
LOG_TRACE_NAMES: dict[int, str] = {int(lg): lg.trace_name for lg in EVENT_LOGS}
#: the kernel's trace name -> CLI name.
LOG_CLI_NAMES: dict[str, str] = {lg.trace_name: lg.cli_name for lg in EVENT_LOGS}


class InterruptMode(enum.IntEnum):
    """An event log's interrupt mode, bits 1:0 of its Event Interrupt Policy settings
    (Table 8-52); JSON and tables show the lower-case names."""

    NONE = 0
    MSI_MSIX = 1
    FW = 2  #: firmware interrupt (EFN VDM)
    RESERVED = 3


# --- media errors and poison (CXL 3.1 8.2.9.9.4) -----------------------------------------

POISON_LEN_MULT = 64  #: Media Error Record lengths (and poison ranges) are in 64-byte units


class PoisonSource(enum.IntEnum):
    """Error source, bits 2:0 of a Media Error Record's address (Table 8-142)."""

    UNKNOWN = 0
    EXTERNAL = 1
    INTERNAL = 2
    INJECTED = 3
    VENDOR = 7

    @property
    def spec_name(self) -> str:
        """``Injected``: the name the kernel's cxl_poison event and cxl-cli print."""
        return self.name.title()


def poison_source_name(source: int) -> str:
    """4-6 are reserved (the kernel and cxl-cli print "Reserved")."""
    try:
        return PoisonSource(source).spec_name
    except ValueError:
        return "Reserved"


class PoisonFlag(enum.IntFlag):
    """Get Poison List output flags (Table 8-141); the kernel's ``show_poison_flags``
    prints them as ``More``, ``Overflow``, ``Scanning``."""

    MORE = 1 << 0
    OVERFLOW = 1 << 1
    SCANNING = 1 << 2

    @property
    def trace_name(self) -> str:
        return (self.name or "").title()


class ScanFlag(enum.IntFlag):
    """Get Scan Media Results flags (Table 8-148)."""

    MORE = 1 << 0
    STOPPED_PREMATURELY = 1 << 1


# --- log UUIDs (CXL 3.1 8.2.9.5) ---------------------------------------------------------

CEL_UUID = "0da9c0b5-bf41-4b78-8f79-96b1623b3f17"
#: DEFINE_CXL_VENDOR_DEBUG_UUID: the only log Linux lets userspace clear
VENDOR_DEBUG_UUID = "5e1819d9-11a9-400c-811f-d60719403d86"
COMPONENT_STATE_DUMP_UUID = "b3fab4cf-01b6-4332-943e-5e9962f23567"

#: UUID -> (spec name, the short name users type: ``cxlctl get-log cel``).
_LOGS: dict[str, tuple[str, str]] = {
    CEL_UUID: ("Command Effects Log (CEL)", "cel"),
    VENDOR_DEBUG_UUID: ("Vendor Debug Log", "vendor-debug"),
    COMPONENT_STATE_DUMP_UUID: ("Component State Dump Log", "component-state-dump"),
}
KNOWN_LOGS: dict[str, str] = {u: name for u, (name, _) in _LOGS.items()}
LOG_ALIASES: dict[str, str] = {alias: u for u, (_, alias) in _LOGS.items()}


def uuid_bytes(canonical: str) -> bytes:
    """A canonical UUID string in the spec's byte order (RFC 4122, big-endian)."""
    return bytes.fromhex(canonical.replace("-", ""))
