"""Per-memdev status commands: health, partition, fw-info, alert-config,
shutdown-state, timestamp, security-state; and the ``cxl list -H/-A`` blocks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from .. import render as rd
from ..errors import UnsupportedCommand
from ..memdev import Memdev
from . import CONTEXT, App, app_of, fmt_of, memdevs_argument, output_option, selected

Row = dict[str, Any]

# --- shared helpers (also used by logs.py) -----------------------------------------


def each_memdev(
    app: App, memdevs: Sequence[str], fn: Callable[[Memdev], Row], *, names: bool = False
) -> list[Row]:
    """``[{"memdev": name, **fn(memdev)}, ...]`` over the selected memdevs (none =
    all); MEMDEVS are command-line arguments, or resolved names with ``names``."""
    chosen = list(memdevs) if names else selected(click.get_current_context(), memdevs)

    def one(name: str) -> Row:
        md = Memdev(app.backend, name)
        try:
            return {"memdev": name, **fn(md)}
        finally:
            md.close()

    return app.each(chosen, one)


def emit(app: App, rows: list[Row], fmt: str, title: str) -> None:
    """JSON array, or one field/value table per memdev."""
    if fmt == "json":
        app.json(rows)
        return
    for d in rows:
        fields = {k: v for k, v in d.items() if k != "memdev"}
        rd.print_fields(
            app.style, f"{d['memdev']}: {title}", fields, simulated=app.backend.simulated
        )


def _data(value: Any) -> Row:
    d: Row = rd.to_data(value)
    return d


# --- the cxl list -H / -A blocks ----------------------------------------------------


#: Media Status byte -> cxl-cli's ten ``media_*`` booleans for it (a reserved value:
#: all false), built on first use
_MEDIA_FLAGS: dict[int, dict[str, bool]] = {}


def _media_flags(status: int) -> dict[str, bool]:
    if not _MEDIA_FLAGS:
        from ..mailbox.health import MEDIA_STATUS

        for code in range(256):
            _MEDIA_FLAGS[code] = {f"media_{n}": code == c for c, n in MEDIA_STATUS.items()}
    return _MEDIA_FLAGS[status & 0xFF]


def cxl_health_json(md: Memdev) -> Row:
    """``cxl list -H``'s ``health`` object (ndctl cxl/json.c), from Get Health Info."""
    h = md.health()
    d: Row = {
        "maintenance_needed": h.maintenance_needed,
        "performance_degraded": h.performance_degraded,
        "hw_replacement_needed": h.hw_replacement_needed,
    }
    d.update(_media_flags(h.media_status))
    d["ext_life_used"] = h.ext_life_used
    d["ext_temperature"] = h.ext_temperature
    d["ext_corrected_volatile"] = h.ext_corrected_volatile
    d["ext_corrected_persistent"] = h.ext_corrected_persistent
    if h.life_used_percent is not None:
        d["life_used_percent"] = h.life_used_percent
    if h.temperature is not None:
        d["temperature"] = h.temperature
    d["dirty_shutdowns"] = h.dirty_shutdowns
    d["volatile_errors"] = h.volatile_errors
    d["pmem_errors"] = h.pmem_errors
    return d


def cxl_alert_config_json(md: Memdev) -> Row:
    """``cxl list -A``'s ``alert_config`` object, from Get Alert Configuration."""
    d = _data(md.alert_config())
    d.pop("trailing_bytes", None)
    return d


# --- commands -------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@memdevs_argument
@output_option()
@click.pass_context
def health(ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool) -> None:
    """Decode Get Health Info (opcode 0x4200): a summary row per memdev.

    The table has one row per memdev: serial, state, media status, life used
    (%), temperature (degrees C), dirty shutdowns, corrected errors
    (volatile/persistent), and a verdict (OK, WARNING, CRITICAL: the word is there for NO_COLOR
    terminals too). -o wide adds the health status bits; --json has every field
    (temperature null when the device does not implement it). A device without
    the command (QEMU 10) exits 4. On --sim, CXLCTL_SIM_HEALTH=mem1:critical
    (or warning) makes a device unhealthy, to rehearse alerts.

    \b
    Examples:
      cxlctl --sim health
      CXLCTL_SIM_HEALTH=mem1:critical cxlctl --sim health
      cxlctl --sim health mem0 --json | jq '.[0].pmem_errors'
    """
    app = app_of(ctx)
    rows = each_memdev(app, memdevs, lambda md: _data(md.health()))
    fmt = fmt_of(output, as_json)
    if fmt == "json":
        app.json(rows)
        return
    cols = ["memdev", "serial", "state", "media", "life_%", "temp_C", "dirty"]
    cols += ["errors", "verdict"]
    if output == "wide":
        cols += ["maintenance_needed", "performance_degraded", "hw_replacement_needed"]
        cols += ["ext_life_used", "ext_temperature"]
    table = []
    for d in rows:
        info = app.backend.info(d["memdev"])
        table.append(
            [
                d["memdev"],
                info.serial,
                "enabled" if app.backend.enabled(d["memdev"]) else "disabled",
                str(d["media_status_name"]).replace("_", " "),
                d["life_used_percent"],
                d["temperature"],
                d["dirty_shutdowns"],
                f"{d['volatile_errors']}/{d['pmem_errors']}",
                health_verdict(d),
                *(d[c] for c in cols[9:]),
            ]
        )
    rd.print_table(app.style, "CXL memdev health", cols, table, simulated=app.backend.simulated)


def health_verdict(d: Row) -> str:
    """CRITICAL: replace the device, data at risk or a critical threshold passed;
    WARNING: maintenance, degraded performance or a warning threshold; else OK."""
    levels = [d.get(k) for k in ("ext_life_used", "ext_temperature")]
    if d.get("hw_replacement_needed") or d.get("media_status", 0) != 0 or "critical" in levels:
        return "CRITICAL"
    warn = ("ext_corrected_volatile", "ext_corrected_persistent")
    if (
        d.get("maintenance_needed")
        or d.get("performance_degraded")
        or "warning" in levels
        or any(d.get(k) == "warning" for k in warn)
    ):
        return "WARNING"
    return "OK"


@click.command(context_settings=CONTEXT)
@memdevs_argument
@output_option()
@click.pass_context
def partition(ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool) -> None:
    """Decode Get Partition Info (opcode 0x4100): active and next capacities.

    Capacities are in bytes (the device reports 256 MiB units); "next" is what
    takes effect after the next cold reset (0 when nothing is pending).

    \b
    Examples:
      cxlctl --sim partition
      cxlctl --sim partition mem2 -u --json
    """
    app = app_of(ctx)
    rows = each_memdev(app, memdevs, lambda md: _data(md.partition_info()))
    emit(app, rows, fmt_of(output, as_json), "Partition Info")


@click.command("fw-info", context_settings=CONTEXT)
@memdevs_argument
@output_option()
@click.pass_context
def fw_info(ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool) -> None:
    """Decode Get FW Info (opcode 0x0200): slots, versions, active/staged, caps.

    staged_slot is 0 when no image waits for activation; online_activate_capable
    is bit 0 of the activation capabilities.

    \b
    Examples:
      cxlctl --sim fw-info
      cxlctl --sim fw-info mem0 --json | jq '.[0].slots'
    """
    app = app_of(ctx)
    rows = each_memdev(app, memdevs, lambda md: _data(md.fw_info()))
    emit(app, rows, fmt_of(output, as_json), "FW Info")


@click.command("alert-config", context_settings=CONTEXT)
@memdevs_argument
@output_option()
@click.pass_context
def alert_config(ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool) -> None:
    """Decode Get Alert Configuration (opcode 0x4201), every field.

    Keys are cxl-cli's (`cxl list -A`): which programmable warning thresholds are
    valid and writable, the critical thresholds and the warning thresholds.

    \b
    Examples:
      cxlctl --sim alert-config
      cxlctl --sim alert-config mem0 --json
    """
    app = app_of(ctx)
    rows = each_memdev(app, memdevs, lambda md: _data(md.alert_config()))
    emit(app, rows, fmt_of(output, as_json), "Alert Configuration")


@click.command("shutdown-state", context_settings=CONTEXT)
@memdevs_argument
@output_option()
@click.pass_context
def shutdown_state(ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool) -> None:
    """Decode Get Shutdown State (opcode 0x4203): clean or dirty.

    \b
    Examples:
      cxlctl --sim shutdown-state
      cxlctl --sim shutdown-state --json | jq '.[] | select(.dirty)'
    """
    app = app_of(ctx)
    rows = each_memdev(app, memdevs, lambda md: _data(md.shutdown_state()))
    emit(app, rows, fmt_of(output, as_json), "Shutdown State")


def iso8601(ns: int) -> str | None:
    """ns since the Unix epoch as ISO-8601 UTC with ns precision; None for 0 (never set)."""
    import datetime as dt

    if ns == 0:
        return None
    sec, frac = divmod(ns, 1_000_000_000)
    t = dt.datetime.fromtimestamp(sec, tz=dt.UTC)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


def _timestamp(md: Memdev) -> Row:
    ts = md.timestamp()
    return {
        "timestamp": ts.timestamp,
        "iso8601": iso8601(ts.timestamp),
        "trailing_bytes": ts.trailing_bytes,
    }


@click.command(context_settings=CONTEXT)
@memdevs_argument
@output_option()
@click.pass_context
def timestamp(ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool) -> None:
    """Read the device clock with Get Timestamp (opcode 0x0300).

    timestamp is ns since the Unix epoch (0: never set; Linux sets it at probe),
    iso8601 the same instant in UTC.

    \b
    Examples:
      cxlctl --sim timestamp
      cxlctl --sim timestamp mem0 --json | jq -r '.[0].iso8601'
    """
    app = app_of(ctx)
    rows = each_memdev(app, memdevs, _timestamp)
    emit(app, rows, fmt_of(output, as_json), "Timestamp")


def _security_state(app: App, name: str) -> Row:
    state = app.backend.sysfs(name).get("security/state")
    if state is None:
        raise UnsupportedCommand(
            f"{name}: security-state: no security/state attribute in sysfs",
            hint="Linux has no command id for Get Security State; it needs a kernel "
            "that exposes memN/security/state",
        )
    return {"security_state": state}


@click.command("security-state", context_settings=CONTEXT)
@memdevs_argument
@output_option()
@click.pass_context
def security_state(ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool) -> None:
    """Show the security state the kernel reports (sysfs memN/security/state).

    Linux has no command id for Get Security State (opcode 0x4500), so, like
    cxl-cli, this reads sysfs: disabled, unlocked, locked, frozen or sanitize.

    \b
    Examples:
      cxlctl --sim security-state
      cxlctl --sim security-state mem0 --json
    """
    app = app_of(ctx)
    rows = app.each(selected(ctx, memdevs), lambda n: {"memdev": n, **_security_state(app, n)})
    emit(app, rows, fmt_of(output, as_json), "Security State")


@click.command("event-interrupt-policy", context_settings=CONTEXT)
@memdevs_argument
@output_option("table", "json")
@click.pass_context
def event_interrupt_policy(
    ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool
) -> None:
    """Decode Get Event Interrupt Policy (opcode 0x0102): how each event log interrupts.

    Per log (info, warn, fail, fatal, and dynamic_capacity on a CXL 3 device):
    the raw settings byte, the mode (none, msi_msix, fw, reserved) and the
    MSI/MSI-X message number. Linux 6.12 has no command id for it: cxlctl sends it
    through RAW, so it needs a kernel built with CONFIG_CXL_MEM_RAW_COMMANDS
    (exit 4 otherwise; on the simulator CXLCTL_SIM_RAW=1).

    \b
    Examples:
      CXLCTL_SIM_RAW=1 cxlctl --sim event-interrupt-policy mem0
      CXLCTL_SIM_RAW=1 cxlctl --sim event-interrupt-policy --json | jq '.[0].info.mode'
    """
    app = app_of(ctx)
    rows = each_memdev(app, memdevs, lambda md: _data(md.event_interrupt_policy()))
    emit(app, rows, fmt_of(output, as_json), "Event Interrupt Policy")
