"""The command catalogue: opcodes, kernel command ids, payload layouts, decoders.

One immutable, typed :class:`Command` record per CXL mailbox command (CXL 3.1
section 8.2.9 names and opcodes), like ndctl's ``CXL_CMDS``: CLI names and
aliases, the spec title and opcode, Linux 6.12's command id and its
``cxl_mem_commands[]`` sizes, the payload layouts, a typed decoder, the Command
Effects QEMU 10 reports in its CEL, and whether the command changes the device.
Name/opcode/id lookups, completion candidates, the simulated kernel's command
table, the simulated device's dispatch and CEL are all derived from
:data:`CATALOGUE`; ``tests/test_catalogue.py`` checks the CLI verbs and help
lists against it.  docs/adding-a-command.md says how to add one.

Decoders take ``bytes`` of any length and either return a frozen dataclass of
plain values or raise :class:`~cxlctl.errors.DecodeError`: a payload shorter
than its layout is an error naming the command and both lengths; a longer one
(a newer device) decodes what is known and reports ``trailing_bytes``.
"""

from __future__ import annotations

import ctypes
import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import UsageError
from ..record import Record
from ..uapi import CXL_VARIABLE_PAYLOAD, CommandId
from . import layouts as lay

# re-exported: the log tables' home is .names
from .names import CEL_UUID as CEL_UUID
from .names import KNOWN_LOGS as KNOWN_LOGS
from .names import LOG_ALIASES as LOG_ALIASES

if TYPE_CHECKING:
    from .events import EventInterruptPolicy, EventRecords
    from .firmware import FwInfo
    from .generic import RawBytes, ScanMediaCaps, SecurityState, Timestamp
    from .health import AlertConfig, HealthInfo, ShutdownState
    from .logs import LogCaps, SupportedLogs
    from .media import PoisonList, ScanMediaResults
    from .memdev import Identify, PartitionInfo

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


# --- the catalogue -------------------------------------------------------------

VARIABLE: None = None  #: a variable-length payload

T = TypeVar("T", covariant=True)
Decoder = Callable[[bytes], T]
#: A decoder, imported only when first called: a run pays for the decoders it uses.
DecoderThunk = Callable[[], Callable[[bytes], T]]
Layout = type[ctypes.Structure]
#: (return code, input payload, query) -> one sentence or None; see :mod:`.explain`
Explainer = Callable[[int, bytes, Callable[[str], Any]], "str | None"]
#: an explainer, imported only when its command fails
ExplainThunk = Callable[[], Explainer]


def _explains(name: str) -> ExplainThunk:
    def thunk() -> Explainer:
        from . import explain

        fn: Explainer = getattr(explain, name)
        return fn

    thunk.__name__ = f"explain_{name}"
    return thunk


class Command(Record, Generic[T]):
    """One mailbox command; ``T`` is what its decoder returns."""

    name: str  #: CLI name (kebab-case), also the ``send``/``decode`` argument
    title: str  #: CXL 3.1 spec name
    opcode: int
    kernel_id: int | None  #: CXL_MEM_COMMAND_ID_* if Linux 6.12 has one
    size_in: int | None  #: spec layout size in bytes, None = variable
    size_out: int | None  #: spec layout size in bytes, None = variable
    decoder: DecoderThunk[T]  #: the output payload's decoder (a typed thunk)
    destructive: bool = False  #: changes device state, data or configuration
    aliases: tuple[str, ...] = ()  #: other names ``send``/``decode`` accept
    verbs: tuple[str, ...] = ()  #: the CLI commands dedicated to it (``cxlctl health``)
    effects: int = 0  #: CEL Command Effect (Table 8-75) as QEMU 10 reports it
    in_layout: Layout | None = None  #: input layout (the fixed header if variable)
    out_layout: Layout | None = None  #: output layout (the fixed header if variable)
    #: ``cxl_mem_commands[]``'s (size_in, size_out) when they differ from the spec's
    kernel_sizes: tuple[int | None, int | None] | None = None
    kernel_force_enable: bool = False  #: CXL_CMD_FLAG_FORCE_ENABLE in Linux 6.12
    #: in Linux 6.12's ``cxl_disabled_raw_commands[]``: RAW refuses it (EPERM)
    raw_disabled: bool = False
    #: claimed by cxl_pmem's nvdimm bridge (``exclusive_cmds``): EBUSY while it is bound
    bridge_exclusive: bool = False
    #: why the device refused it: the field, its rule and range (:mod:`.explain`)
    explain: ExplainThunk | None = None

    @property
    def has_decoder(self) -> bool:
        """A structured decoder (not just the bytes)."""
        return self.decoder is not undecoded

    @property
    def kernel_size_in(self) -> int | None:
        return self.size_in if self.kernel_sizes is None else self.kernel_sizes[0]

    @property
    def kernel_size_out(self) -> int | None:
        return self.size_out if self.kernel_sizes is None else self.kernel_sizes[1]

    def explain_rc(self, rc: int, payload: bytes, query: Callable[[str], Any]) -> str | None:
        """Which input field the device refused and its valid range, if this
        command's record has an explainer and it recognises the case."""
        if self.explain is None:
            return None
        return self.explain()(rc, payload, query)

    def decode(self, data: bytes) -> T:
        """Decode an output payload (a :class:`~.generic.RawBytes` if it has no structure)."""
        fn = _DECODERS.get(self.name)
        if fn is None:  # the thunk imports the decoder's module: once per command
            fn = _DECODERS[self.name] = self.decoder()
        result: T = fn(data)
        return result


#: command name -> its decoder, resolved from the record's thunk on first use
_DECODERS: dict[str, Callable[[bytes], Any]] = {}


# Decoder thunks: typed for mypy, importing the decoder module on first use.
def undecoded() -> Decoder[RawBytes]:
    from .generic import decode_bytes

    return decode_bytes


def _bytes() -> Decoder[RawBytes]:
    """Output that is data, not a structure (labels, a log): the bytes, on purpose
    (:attr:`Command.has_decoder` tells it from :func:`undecoded`)."""
    return undecoded()


def _event_records() -> Decoder[EventRecords]:
    from .events import decode_event_records

    return decode_event_records


def _event_interrupt_policy() -> Decoder[EventInterruptPolicy]:
    from .events import decode_event_interrupt_policy

    return decode_event_interrupt_policy


def _fw_info() -> Decoder[FwInfo]:
    from .firmware import decode_fw_info

    return decode_fw_info


def _timestamp() -> Decoder[Timestamp]:
    from .generic import decode_timestamp

    return decode_timestamp


def _supported_logs() -> Decoder[SupportedLogs]:
    from .logs import decode_supported_logs

    return decode_supported_logs


def _log_caps() -> Decoder[LogCaps]:
    from .logs import decode_log_caps

    return decode_log_caps


def _identify() -> Decoder[Identify]:
    from .memdev import decode_identify

    return decode_identify


def _partition_info() -> Decoder[PartitionInfo]:
    from .memdev import decode_partition_info

    return decode_partition_info


def _health_info() -> Decoder[HealthInfo]:
    from .health import decode_health_info

    return decode_health_info


def _alert_config() -> Decoder[AlertConfig]:
    from .health import decode_alert_config

    return decode_alert_config


def _shutdown_state() -> Decoder[ShutdownState]:
    from .health import decode_shutdown_state

    return decode_shutdown_state


def _poison_list() -> Decoder[PoisonList]:
    from .media import decode_poison_list

    return decode_poison_list


def _scan_media_caps() -> Decoder[ScanMediaCaps]:
    from .generic import decode_scan_media_caps

    return decode_scan_media_caps


def _scan_media_results() -> Decoder[ScanMediaResults]:
    from .media import decode_scan_media_results

    return decode_scan_media_results


def _security_state() -> Decoder[SecurityState]:
    from .generic import decode_security_state

    return decode_security_state


K = CommandId
C = Command
# Events (8.2.9.2)
GET_EVENT_RECORDS = C(
    "get-event-records", "Get Event Records", 0x0100, None, 1, VARIABLE, _event_records,
    verbs=("events",), out_layout=lay.GetEventRecordsOutHeader,
)  # fmt: skip
CLEAR_EVENT_RECORDS = C(
    "clear-event-records", "Clear Event Records", 0x0101, None, VARIABLE, 0, undecoded,
    destructive=True, effects=0x0010, in_layout=lay.ClearEventRecordsIn,
)  # fmt: skip
GET_EVENT_INTERRUPT_POLICY = C(
    "get-event-interrupt-policy", "Get Event Interrupt Policy", 0x0102, None, 0, 4,
    _event_interrupt_policy, aliases=("event-interrupt-policy",),
    verbs=("event-interrupt-policy",), out_layout=lay.EventInterruptPolicy,
)  # fmt: skip
SET_EVENT_INTERRUPT_POLICY = C(
    "set-event-interrupt-policy", "Set Event Interrupt Policy", 0x0103, None, VARIABLE, 0,
    undecoded, destructive=True, effects=0x0002, in_layout=lay.EventInterruptPolicy,
    verbs=("set-event-interrupt-policy",),
)  # fmt: skip
# Firmware update (8.2.9.3)
GET_FW_INFO = C(
    "get-fw-info", "Get FW Info", 0x0200, K.GET_FW_INFO, 0, 0x50, _fw_info,
    aliases=("fw-info",), verbs=("fw-info",), out_layout=lay.FwInfoOut,
)  # fmt: skip
TRANSFER_FW = C(
    "transfer-fw", "Transfer FW", 0x0201, None, VARIABLE, 0, undecoded,
    destructive=True, effects=0x0040, verbs=("update-firmware",),
)  # fmt: skip
ACTIVATE_FW = C(
    "activate-fw", "Activate FW", 0x0202, None, 2, 0, undecoded,
    destructive=True, effects=0x0040,
    raw_disabled=True,
)  # fmt: skip
# Timestamp (8.2.9.4)
GET_TIMESTAMP = C(
    "get-timestamp", "Get Timestamp", 0x0300, K.GET_TIMESTAMP, 0, 8, _timestamp,
    aliases=("timestamp",), verbs=("timestamp",), out_layout=lay.TimestampOut,
)  # fmt: skip
SET_TIMESTAMP = C(
    "set-timestamp", "Set Timestamp", 0x0301, None, 8, 0, undecoded,
    destructive=True, effects=0x0008, in_layout=lay.TimestampOut, verbs=("set-timestamp",),
    explain=_explains("set_timestamp"),
)  # fmt: skip
# Logs (8.2.9.5)
GET_SUPPORTED_LOGS = C(
    "get-supported-logs", "Get Supported Logs", 0x0400, K.GET_SUPPORTED_LOGS, 0, VARIABLE,
    _supported_logs, aliases=("supported-logs", "logs"), verbs=("logs",),
    out_layout=lay.SupportedLogsHeader, kernel_force_enable=True,
)  # fmt: skip
GET_LOG = C(
    "get-log", "Get Log", 0x0401, K.GET_LOG, 0x18, VARIABLE, _bytes,
    verbs=("get-log", "cel"), in_layout=lay.GetLogIn, kernel_force_enable=True,
    explain=_explains("get_log"),
)  # fmt: skip
GET_LOG_CAPS = C(
    "get-log-caps", "Get Log Capabilities", 0x0402, K.GET_LOG_CAPS, 0x10, 4, _log_caps,
    aliases=("log-caps",), verbs=("log-caps",), in_layout=lay.LogUuidIn,
    out_layout=lay.LogCapsOut,
)  # fmt: skip
CLEAR_LOG = C(
    "clear-log", "Clear Log", 0x0403, K.CLEAR_LOG, 0x10, 0, undecoded,
    destructive=True, effects=0x0010, in_layout=lay.LogUuidIn, verbs=("clear-log",),
)  # fmt: skip
POPULATE_LOG = C(
    "populate-log", "Populate Log", 0x0404, None, 0x10, 0, undecoded,
    destructive=True, in_layout=lay.LogUuidIn,
)  # fmt: skip
GET_SUPPORTED_LOGS_SUB_LIST = C(
    "get-supported-logs-sub-list", "Get Supported Logs Sub-List", 0x0405,
    K.GET_SUP_LOG_SUBLIST, 2, VARIABLE, undecoded, in_layout=lay.SupLogSublistIn,
)  # fmt: skip
# Features (8.2.9.6)
GET_SUPPORTED_FEATURES = C(
    "get-supported-features", "Get Supported Features", 0x0500, None, 8, VARIABLE, undecoded,
)  # fmt: skip
GET_FEATURE = C("get-feature", "Get Feature", 0x0501, None, 0x15, VARIABLE, undecoded)
SET_FEATURE = C(
    "set-feature", "Set Feature", 0x0502, None, VARIABLE, 0, undecoded,
    destructive=True, effects=0x003E,
)  # fmt: skip
# Memory device commands (8.2.9.9)
IDENTIFY = C(
    "identify", "Identify Memory Device", 0x4000, K.IDENTIFY, 0, 0x43, _identify,
    verbs=("identify",), out_layout=lay.IdentifyOut, kernel_force_enable=True,
)  # fmt: skip
GET_PARTITION_INFO = C(
    "get-partition-info", "Get Partition Info", 0x4100, K.GET_PARTITION_INFO, 0, 0x20,
    _partition_info, aliases=("partition", "partition-info"), verbs=("partition",),
    out_layout=lay.PartitionInfoOut,
)  # fmt: skip
SET_PARTITION_INFO = C(
    "set-partition-info", "Set Partition Info", 0x4101, K.SET_PARTITION_INFO, 0x0A, 0,
    undecoded, destructive=True, verbs=("set-partition",), effects=0x0001,
    raw_disabled=True,
    in_layout=lay.SetPartitionInfoIn, explain=_explains("set_partition_info"),
)  # fmt: skip
GET_LSA = C(
    "get-lsa", "Get LSA", 0x4102, K.GET_LSA, 8, VARIABLE, _bytes,
    aliases=("lsa",), verbs=("read-labels",), in_layout=lay.GetLsaIn,
)  # fmt: skip
SET_LSA = C(
    "set-lsa", "Set LSA", 0x4103, K.SET_LSA, VARIABLE, 0, undecoded,
    destructive=True, verbs=("write-labels", "zero-labels"), effects=0x0006,
    raw_disabled=True, bridge_exclusive=True,
    in_layout=lay.SetLsaIn,
)  # fmt: skip
GET_HEALTH_INFO = C(
    "get-health-info", "Get Health Info", 0x4200, K.GET_HEALTH_INFO, 0, 0x12, _health_info,
    aliases=("health",), verbs=("health",), out_layout=lay.HealthInfoOut,
)  # fmt: skip
GET_ALERT_CONFIG = C(
    "get-alert-config", "Get Alert Configuration", 0x4201, K.GET_ALERT_CONFIG, 0, 0x10,
    _alert_config, aliases=("alert-config",), verbs=("alert-config",),
    out_layout=lay.AlertConfigOut,
)  # fmt: skip
SET_ALERT_CONFIG = C(
    "set-alert-config", "Set Alert Configuration", 0x4202, K.SET_ALERT_CONFIG, 0x0C, 0,
    undecoded, destructive=True, verbs=("set-alert-config",), effects=0x0008,
    in_layout=lay.SetAlertConfigIn, explain=_explains("set_alert_config"),
)  # fmt: skip
GET_SHUTDOWN_STATE = C(
    "get-shutdown-state", "Get Shutdown State", 0x4203, K.GET_SHUTDOWN_STATE, 0, 1,
    _shutdown_state, aliases=("shutdown-state",), verbs=("shutdown-state",),
    out_layout=lay.ShutdownStateOut,
)  # fmt: skip
SET_SHUTDOWN_STATE = C(
    "set-shutdown-state", "Set Shutdown State", 0x4204, K.SET_SHUTDOWN_STATE, 1, 0,
    undecoded, destructive=True, effects=0x0008, in_layout=lay.ShutdownStateOut,
    raw_disabled=True, bridge_exclusive=True,
    verbs=("set-shutdown-state",), explain=_explains("set_shutdown_state"),
)  # fmt: skip
GET_POISON_LIST = C(
    "get-poison-list", "Get Poison List", 0x4300, None, 0x10, VARIABLE, _poison_list,
    verbs=("poison",), in_layout=lay.PoisonListIn, out_layout=lay.PoisonListOutHeader,
    raw_disabled=True,
)  # fmt: skip
INJECT_POISON = C(
    "inject-poison", "Inject Poison", 0x4301, None, 8, 0, undecoded,
    destructive=True, in_layout=lay.InjectPoisonIn, verbs=("inject-media-poison",),
    raw_disabled=True,
)  # fmt: skip
CLEAR_POISON = C(
    "clear-poison", "Clear Poison", 0x4302, None, 0x48, 0, undecoded,
    destructive=True, in_layout=lay.ClearPoisonIn, verbs=("clear-media-poison",),
    raw_disabled=True,
)  # fmt: skip
GET_SCAN_MEDIA_CAPS = C(
    "get-scan-media-caps", "Get Scan Media Capabilities", 0x4303, K.GET_SCAN_MEDIA_CAPS,
    0x10, 4, _scan_media_caps, aliases=("scan-media-caps",), verbs=("scan-media-caps",),
    in_layout=lay.ScanMediaCapsIn, out_layout=lay.ScanMediaCapsOut,
)  # fmt: skip
SCAN_MEDIA = C(
    "scan-media", "Scan Media", 0x4304, None, 0x11, 0, undecoded,
    destructive=True, effects=0x0040, in_layout=lay.ScanMediaIn,
    raw_disabled=True,
)  # fmt: skip
GET_SCAN_MEDIA_RESULTS = C(
    "get-scan-media-results", "Get Scan Media Results", 0x4305, None, 0, VARIABLE,
    _scan_media_results, out_layout=lay.ScanMediaResultsHeader,
    raw_disabled=True,
)  # fmt: skip
SANITIZE = C(
    "sanitize", "Sanitize", 0x4400, None, 0, 0, undecoded, destructive=True, effects=0x0064,
    verbs=("sanitize",),
)  # fmt: skip
SECURE_ERASE = C(
    "secure-erase", "Secure Erase", 0x4401, None, 0, 0, undecoded, destructive=True,
    verbs=("secure-erase",),
)  # fmt: skip
GET_SECURITY_STATE = C(
    "get-security-state", "Get Security State", 0x4500, None, 0, 4, _security_state,
    verbs=("security-state",), out_layout=lay.SecurityStateOut,
)  # fmt: skip

CATALOGUE: tuple[Command[Any], ...] = (
    GET_EVENT_RECORDS, CLEAR_EVENT_RECORDS, GET_EVENT_INTERRUPT_POLICY,
    SET_EVENT_INTERRUPT_POLICY, GET_FW_INFO, TRANSFER_FW, ACTIVATE_FW, GET_TIMESTAMP,
    SET_TIMESTAMP, GET_SUPPORTED_LOGS, GET_LOG, GET_LOG_CAPS, CLEAR_LOG, POPULATE_LOG,
    GET_SUPPORTED_LOGS_SUB_LIST, GET_SUPPORTED_FEATURES, GET_FEATURE, SET_FEATURE, IDENTIFY,
    GET_PARTITION_INFO, SET_PARTITION_INFO, GET_LSA, SET_LSA, GET_HEALTH_INFO,
    GET_ALERT_CONFIG, SET_ALERT_CONFIG, GET_SHUTDOWN_STATE, SET_SHUTDOWN_STATE,
    GET_POISON_LIST, INJECT_POISON, CLEAR_POISON, GET_SCAN_MEDIA_CAPS, SCAN_MEDIA,
    GET_SCAN_MEDIA_RESULTS, SANITIZE, SECURE_ERASE, GET_SECURITY_STATE,
)  # fmt: skip
del C

BY_NAME: dict[str, Command[Any]] = {c.name: c for c in CATALOGUE}
BY_OPCODE: dict[int, Command[Any]] = {c.opcode: c for c in CATALOGUE}
BY_KERNEL_ID: dict[int, Command[Any]] = {
    c.kernel_id: c for c in CATALOGUE if c.kernel_id is not None
}
#: Short aliases users type (``cxlctl send mem0 health``), from the records.
ALIASES: dict[str, str] = {a: c.name for c in CATALOGUE for a in c.aliases}
#: CLI verb -> the command it is dedicated to (``health`` -> get-health-info).
BY_VERB: dict[str, Command[Any]] = {v: c for c in CATALOGUE for v in c.verbs}


def kernel_size(n: int | None) -> int:
    """A catalogue size as ``cxl_mem_commands[]`` writes it (variable: ``~0``)."""
    return CXL_VARIABLE_PAYLOAD if n is None else n


def lookup(name_or_id: str) -> Command[Any]:
    """Find a command by CLI name, alias, kernel enum name or numeric kernel id."""
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
