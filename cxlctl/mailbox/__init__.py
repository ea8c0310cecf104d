"""The command catalogue: opcodes, kernel command ids, payload layouts, decoders.

One :class:`Command` record per CXL mailbox command (CXL 3.1 section 8.2.9 names
and opcodes).  Name/opcode/id lookups, completion candidates, the simulator's
dispatch and the help text are all derived from :data:`CATALOGUE`.

Decoders take ``bytes`` of any length and either return a frozen dataclass of
plain values or raise :class:`~cxlctl.errors.DecodeError`: a payload shorter
than its layout is an error naming the command and both lengths; a longer one
(a newer device) decodes what is known and reports ``trailing_bytes``.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable
from typing import Any

from ..errors import UsageError
from ..record import Record
from ..uapi import CommandId

CAPACITY_UNIT = 256 * 1024 * 1024  #: capacities in Identify/Partition Info are in 256 MiB units

# --- mailbox return codes (CXL 3.1 Table 8-34) ------------------------------


class ReturnCode(enum.IntEnum):
    SUCCESS = 0x00
    BACKGROUND_COMMAND_STARTED = 0x01
    INVALID_INPUT = 0x02
    UNSUPPORTED = 0x03
    INTERNAL_ERROR = 0x04
    RETRY_REQUIRED = 0x05
    BUSY = 0x06
    MEDIA_DISABLED = 0x07
    FW_TRANSFER_IN_PROGRESS = 0x08
    FW_TRANSFER_OUT_OF_ORDER = 0x09
    FW_VERIFICATION_FAILED = 0x0A
    INVALID_SLOT = 0x0B
    ACTIVATION_FAILED_ROLLED_BACK = 0x0C
    ACTIVATION_FAILED_COLD_RESET_REQUIRED = 0x0D
    INVALID_HANDLE = 0x0E
    INVALID_PHYSICAL_ADDRESS = 0x0F
    INJECT_POISON_LIMIT_REACHED = 0x10
    PERMANENT_MEDIA_FAILURE = 0x11
    ABORTED = 0x12
    INVALID_SECURITY_STATE = 0x13
    INCORRECT_PASSPHRASE = 0x14
    UNSUPPORTED_MAILBOX_OR_CCI = 0x15
    INVALID_PAYLOAD_LENGTH = 0x16
    INVALID_LOG = 0x17
    INTERRUPTED = 0x18
    UNSUPPORTED_FEATURE_VERSION = 0x19
    UNSUPPORTED_FEATURE_SELECTION_VALUE = 0x1A
    FEATURE_TRANSFER_IN_PROGRESS = 0x1B
    FEATURE_TRANSFER_OUT_OF_ORDER = 0x1C
    RESOURCES_EXHAUSTED = 0x1D
    INVALID_EXTENT_LIST = 0x1E
    TRANSFER_OUT_OF_ORDER = 0x1F
    REQUEST_ABORT_NOT_SUPPORTED = 0x20


def return_code_name(rc: int) -> str:
    """Spec name of a mailbox return code, e.g. ``Invalid Input``."""
    try:
        return (
            ReturnCode(rc)
            .name.replace("_", " ")
            .title()
            .replace("Fw ", "FW ")
            .replace("Cci", "CCI")
        )
    except ValueError:
        return f"Unknown return code {rc:#x}"


# --- payload layouts ---------------------------------------------------------
# ctypes little-endian, packed, "ms" layout; field names from the spec/kernel.
KNOWN_LOGS: dict[str, str] = {
    "0da9c0b5-bf41-4b78-8f79-96b1623b3f17": "Command Effects Log (CEL)",
    "5e1819d9-11a9-400c-811f-d60719403d86": "Vendor Debug Log",
    "b3fab4cf-01b6-4332-943e-5e9962f23567": "Component State Dump Log",
}
CEL_UUID = "0da9c0b5-bf41-4b78-8f79-96b1623b3f17"
#: Short names users type for the logs above (``cxlctl get-log cel``).
LOG_ALIASES: dict[str, str] = {
    "cel": CEL_UUID,
    "vendor-debug": "5e1819d9-11a9-400c-811f-d60719403d86",
    "component-state-dump": "b3fab4cf-01b6-4332-943e-5e9962f23567",
}


# --- the catalogue -------------------------------------------------------------

VARIABLE: None = None  #: a variable-length payload


class Command(Record):
    """One mailbox command."""

    name: str  #: CLI name (kebab-case)
    title: str  #: CXL 3.1 spec name
    opcode: int
    kernel_id: int | None  #: CXL_MEM_COMMAND_ID_* if Linux has one
    size_in: int | None  #: bytes, None = variable
    size_out: int | None  #: bytes, None = variable
    #: ``"module:function"`` in this package, imported only when first used, so a
    #: run pays only for the decoders it needs (start-up time matters).
    decoder: str | None = None
    destructive: bool = False

    @property
    def has_decoder(self) -> bool:
        return self.decoder is not None

    def decode(self, data: bytes) -> Any:
        """Decode an output payload with this command's decoder (opaque bytes if none)."""
        fn = _resolve(self.decoder or "generic:decode_bytes")
        return fn(data)


_RESOLVED: dict[str, Callable[[bytes], Any]] = {}


def _resolve(spec: str) -> Callable[[bytes], Any]:
    fn = _RESOLVED.get(spec)
    if fn is None:  # imported once, on first use
        module, func = spec.split(":")
        fn = getattr(importlib.import_module(f"{__name__}.{module}"), func)
        _RESOLVED[spec] = fn
    return fn


def _c(
    name: str,
    title: str,
    opcode: int,
    kid: int | None,
    sin: int | None,
    sout: int | None,
    dec: str | None = None,
    destructive: bool = False,
) -> Command:
    return Command(name, title, opcode, kid, sin, sout, dec, destructive)


K = CommandId
CATALOGUE: tuple[Command, ...] = (
    # Events (8.2.9.2)
    _c(
        "get-event-records",
        "Get Event Records",
        0x0100,
        None,
        1,
        VARIABLE,
        "events:decode_event_records",
    ),
    _c("clear-event-records", "Clear Event Records", 0x0101, None, VARIABLE, 0, None, True),
    _c("get-event-interrupt-policy", "Get Event Interrupt Policy", 0x0102, None, 0, 5),
    _c(
        "set-event-interrupt-policy",
        "Set Event Interrupt Policy",
        0x0103,
        None,
        VARIABLE,
        0,
        None,
        True,
    ),
    # Firmware update (8.2.9.3)
    _c("get-fw-info", "Get FW Info", 0x0200, K.GET_FW_INFO, 0, 0x50, "firmware:decode_fw_info"),
    _c("transfer-fw", "Transfer FW", 0x0201, None, VARIABLE, 0, None, True),
    _c("activate-fw", "Activate FW", 0x0202, None, 2, 0, None, True),
    # Timestamp (8.2.9.4)
    _c("get-timestamp", "Get Timestamp", 0x0300, K.GET_TIMESTAMP, 0, 8, "generic:decode_timestamp"),
    _c("set-timestamp", "Set Timestamp", 0x0301, None, 8, 0, None, True),
    # Logs (8.2.9.5)
    _c(
        "get-supported-logs",
        "Get Supported Logs",
        0x0400,
        K.GET_SUPPORTED_LOGS,
        0,
        VARIABLE,
        "logs:decode_supported_logs",
    ),
    _c("get-log", "Get Log", 0x0401, K.GET_LOG, 0x18, VARIABLE, "generic:decode_bytes"),
    _c(
        "get-log-caps",
        "Get Log Capabilities",
        0x0402,
        K.GET_LOG_CAPS,
        0x10,
        4,
        "logs:decode_log_caps",
    ),
    _c("clear-log", "Clear Log", 0x0403, K.CLEAR_LOG, 0x10, 0, None, True),
    _c("populate-log", "Populate Log", 0x0404, None, 0x10, 0, None, True),
    _c(
        "get-supported-logs-sub-list",
        "Get Supported Logs Sub-List",
        0x0405,
        K.GET_SUP_LOG_SUBLIST,
        2,
        VARIABLE,
    ),
    # Features (8.2.9.6)
    _c("get-supported-features", "Get Supported Features", 0x0500, None, 8, VARIABLE),
    _c("get-feature", "Get Feature", 0x0501, None, 0x15, VARIABLE),
    _c("set-feature", "Set Feature", 0x0502, None, VARIABLE, 0, None, True),
    # Memory device commands (8.2.9.9)
    _c("identify", "Identify Memory Device", 0x4000, K.IDENTIFY, 0, 0x43, "memdev:decode_identify"),
    _c(
        "get-partition-info",
        "Get Partition Info",
        0x4100,
        K.GET_PARTITION_INFO,
        0,
        0x20,
        "memdev:decode_partition_info",
    ),
    _c(
        "set-partition-info",
        "Set Partition Info",
        0x4101,
        K.SET_PARTITION_INFO,
        0x0A,
        0,
        None,
        True,
    ),
    _c("get-lsa", "Get LSA", 0x4102, K.GET_LSA, 8, VARIABLE, "generic:decode_bytes"),
    _c("set-lsa", "Set LSA", 0x4103, K.SET_LSA, VARIABLE, 0, None, True),
    _c(
        "get-health-info",
        "Get Health Info",
        0x4200,
        K.GET_HEALTH_INFO,
        0,
        0x12,
        "health:decode_health_info",
    ),
    _c(
        "get-alert-config",
        "Get Alert Configuration",
        0x4201,
        K.GET_ALERT_CONFIG,
        0,
        0x10,
        "health:decode_alert_config",
    ),
    _c(
        "set-alert-config",
        "Set Alert Configuration",
        0x4202,
        K.SET_ALERT_CONFIG,
        0x0C,
        0,
        None,
        True,
    ),
    _c(
        "get-shutdown-state",
        "Get Shutdown State",
        0x4203,
        K.GET_SHUTDOWN_STATE,
        0,
        1,
        "health:decode_shutdown_state",
    ),
    _c("set-shutdown-state", "Set Shutdown State", 0x4204, K.SET_SHUTDOWN_STATE, 1, 0, None, True),
    _c(
        "get-poison-list",
        "Get Poison List",
        0x4300,
        None,
        0x10,
        VARIABLE,
        "media:decode_poison_list",
    ),
    _c("inject-poison", "Inject Poison", 0x4301, None, 8, 0, None, True),
    _c("clear-poison", "Clear Poison", 0x4302, None, 0x48, 0, None, True),
    _c(
        "get-scan-media-caps",
        "Get Scan Media Capabilities",
        0x4303,
        K.GET_SCAN_MEDIA_CAPS,
        0x10,
        4,
        "generic:decode_scan_media_caps",
    ),
    _c("scan-media", "Scan Media", 0x4304, None, 0x11, 0, None, True),
    _c(
        "get-scan-media-results",
        "Get Scan Media Results",
        0x4305,
        None,
        0,
        VARIABLE,
        "media:decode_scan_media_results",
    ),
    _c("sanitize", "Sanitize", 0x4400, None, 0, 0, None, True),
    _c("secure-erase", "Secure Erase", 0x4401, None, 0, 0, None, True),
    _c(
        "get-security-state",
        "Get Security State",
        0x4500,
        None,
        0,
        4,
        "generic:decode_security_state",
    ),
)

BY_NAME: dict[str, Command] = {c.name: c for c in CATALOGUE}
BY_OPCODE: dict[int, Command] = {c.opcode: c for c in CATALOGUE}
BY_KERNEL_ID: dict[int, Command] = {c.kernel_id: c for c in CATALOGUE if c.kernel_id is not None}

#: Short aliases users type (``cxlctl send mem0 health``).
ALIASES: dict[str, str] = {
    "health": "get-health-info",
    "partition": "get-partition-info",
    "partition-info": "get-partition-info",
    "fw-info": "get-fw-info",
    "timestamp": "get-timestamp",
    "supported-logs": "get-supported-logs",
    "logs": "get-supported-logs",
    "alert-config": "get-alert-config",
    "shutdown-state": "get-shutdown-state",
    "scan-media-caps": "get-scan-media-caps",
    "log-caps": "get-log-caps",
    "lsa": "get-lsa",
}


def lookup(name_or_id: str) -> Command:
    """Find a kernel command by CLI name, alias, kernel enum name or numeric id."""
    key = name_or_id.strip().lower().replace("_", "-")
    if key in ALIASES:
        key = ALIASES[key]
    if key in BY_NAME:
        return BY_NAME[key]
    enum_key = key.upper().replace("-", "_")
    if enum_key in CommandId.__members__:
        cid = CommandId[enum_key]
        if int(cid) in BY_KERNEL_ID:
            return BY_KERNEL_ID[int(cid)]
    try:
        num = int(key, 0)
    except ValueError:
        num = -1
    if num in BY_KERNEL_ID:
        return BY_KERNEL_ID[num]
    raise UsageError(
        f"unknown command {name_or_id!r}",
        hint="see `cxlctl send --help` or `cxlctl query` for the command names",
    )
