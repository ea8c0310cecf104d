"""Mailbox settings a user may change: set-timestamp, set-shutdown-state, clear-log,
set-event-interrupt-policy.

Each runs under the safety contract of :mod:`cxlctl.cli.change` (``--dry-run``, one
outcome per memdev, ``--json`` with ``changed``); the library
(:class:`cxlctl.memdev.Memdev`) sends the command through the kernel's command id
where Linux 6.12 has one, through RAW where the kernel permits it, and otherwise
fails saying why (:mod:`cxlctl.why`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import click

from .. import mailbox as mb
from .. import render as rd
from ..change import Outcome, ProgressHook, Recorder
from ..errors import CxlError, UsageError
from ..memdev import Memdev
from . import CONTEXT, App, app_of, selected
from .change import Change, change_options
from .options import Size, memdevs_required

#: what a verb does to one open memdev: (outcome, message, details)
Step = Callable[[Memdev], tuple[Outcome, str, dict[str, Any]]]


def _run(ctx: click.Context, verb: str, memdevs: Sequence[str], opts: dict[str, Any],
         step: Step, destroys: str | None = None) -> None:  # fmt: skip
    """One Memdev per memdev, its recorder attached (--dry-run), under the contract."""
    app: App = app_of(ctx)
    change = Change(app, verb, opts, destroys=destroys)

    def action(name: str, rec: Recorder | None, _hook: ProgressHook) -> Any:
        with Memdev(app.backend, name) as md:
            md.recorder = rec
            return step(md)

    change.run(selected(ctx, memdevs), action)


# --- set-timestamp ---------------------------------------------------------------------


@click.command("set-timestamp", context_settings=CONTEXT)
@memdevs_required
@click.option("--now", is_flag=True, help="The host's current time (the default).")
@click.option(
    "--time",
    "ns",
    type=Size(units=False, bits=64, metavar="NS"),
    help="Nanoseconds since the Unix epoch (UTC).",
)
@change_options(destructive=False)
@click.pass_context
def set_timestamp(
    ctx: click.Context, /, memdevs: Sequence[str], now: bool, ns: int | None, **opts: Any
) -> None:
    """Set the device's clock (Set Timestamp, opcode 0x0301).

    The device stamps its event records with this clock. Linux sets it itself when
    the driver probes and has no command id for Set Timestamp: cxlctl sends it
    through RAW, so it needs a kernel built with CONFIG_CXL_MEM_RAW_COMMANDS
    (exit 4 otherwise, saying so; on the simulator CXLCTL_SIM_RAW=1). --now (the
    default) is the host's time; --time NS an explicit value. `timestamp` reads it
    back. --dry-run prints the ioctl.

    \b
    Examples:
      CXLCTL_SIM_RAW=1 cxlctl --sim set-timestamp mem0 --now --json
      CXLCTL_SIM_RAW=1 cxlctl --sim set-timestamp all --time 1700000000000000000
      CXLCTL_SIM_RAW=1 cxlctl --sim set-timestamp mem0 --dry-run
    """
    if now and ns is not None:
        raise UsageError("set-timestamp: give --now or --time NS, not both")

    def step(md: Memdev) -> tuple[Outcome, str, dict[str, Any]]:
        value = time.time_ns() if ns is None else ns
        md.set_timestamp(value)
        return Outcome.CHANGED, f"{md.name}: timestamp set to {value} ns", {"timestamp": value}

    _run(ctx, "set-timestamp", memdevs, opts, step)


# --- set-shutdown-state ----------------------------------------------------------------


@click.command("set-shutdown-state", context_settings=CONTEXT)
@memdevs_required
@click.argument("state", type=click.Choice(["clean", "dirty"]), metavar="clean|dirty")
@change_options(destructive=False)
@click.pass_context
def set_shutdown_state(
    ctx: click.Context, /, memdevs: Sequence[str], state: str, **opts: Any
) -> None:
    """Set the device's shutdown state (Set Shutdown State, opcode 0x4204).

    `dirty` tells the device that the host may lose data if power fails now (the
    kernel marks it so while persistent memory is in use); `clean` that it will
    not. The device counts dirty shutdowns (`health`). Linux 6.12 has a command id
    for it (SET_SHUTDOWN_STATE, 14) but claims it for itself while cxl_pmem's
    nvdimm bridge is bound: on an enabled memdev with persistent memory the kernel
    answers EBUSY (exit 7: disable the memdev first). The kernel refuses it through
    RAW. A device whose CEL lacks it (QEMU 10) leaves it disabled (exit 4). The
    state is read first: an unchanged state is reported as unchanged.

    \b
    Examples:
      cxlctl --sim disable-memdev mem0 && cxlctl --sim set-shutdown-state mem0 dirty
      cxlctl --sim set-shutdown-state mem1 clean --json
      cxlctl --sim set-shutdown-state mem0 dirty --dry-run
    """
    dirty = state == "dirty"

    def step(md: Memdev) -> tuple[Outcome, str, dict[str, Any]]:
        try:
            before: bool | None = md.shutdown_state().dirty
        except CxlError:  # Get Shutdown State unavailable: set it anyway
            before = None
        details = {"state": state, "previous_state": _clean(before)}
        if before is dirty:
            return Outcome.UNCHANGED, f"{md.name}: shutdown state is already {state}", details
        md.set_shutdown_state(dirty)
        return Outcome.CHANGED, f"{md.name}: shutdown state set to {state}", details

    _run(ctx, "set-shutdown-state", memdevs, opts, step)


def _clean(dirty: bool | None) -> str | None:
    return None if dirty is None else ("dirty" if dirty else "clean")


# --- clear-log ------------------------------------------------------------------------


@click.command("clear-log", context_settings=CONTEXT)
@memdevs_required
@click.argument("log", metavar="LOG")
@change_options(destructive=True)
@click.pass_context
def clear_log(ctx: click.Context, /, memdevs: Sequence[str], log: str, **opts: Any) -> None:
    """DESTRUCTIVE: clear a device log (Clear Log, opcode 0x0403).

    LOG is a UUID or a name: cel, vendor-debug, component-state-dump (`logs`
    lists a device's logs). Sent through the kernel's CLEAR_LOG command (id 22);
    Linux lets userspace clear only the Vendor Debug Log and answers EBUSY for any
    other (exit 7, saying so). A device whose CEL lacks Clear Log (QEMU 10) leaves
    the command disabled (exit 4). Asks for confirmation on a terminal (naming the
    memdev and its serial); without one, pass -y/--yes. --dry-run prints the ioctl.

    \b
    Examples:
      cxlctl --sim clear-log mem0 vendor-debug --dry-run
      cxlctl --sim clear-log mem0 vendor-debug -y --json
      cxlctl --sim logs mem0
    """
    from .logs import resolve_log

    log_uuid = resolve_log(log)

    def step(md: Memdev) -> tuple[Outcome, str, dict[str, Any]]:
        md.clear_log(log_uuid)
        return Outcome.CHANGED, f"{md.name}: log {log_uuid} cleared", {"log": log_uuid}

    _run(ctx, "clear-log", memdevs, opts, step, destroys=f"the log {log_uuid}")


# --- set-event-interrupt-policy ----------------------------------------------------------

MODES = {"none": 0, "msi_msix": 1, "fw": 2}
LOGS = ("info", "warn", "fail", "fatal", "dynamic_capacity")


def _mode_option(log: str) -> Callable[[Any], Any]:
    flag = "--" + log.replace("_", "-")
    return click.option(
        flag,
        log,
        type=click.Choice(list(MODES)),
        help=f"The {log.replace('_', ' ')} event log's interrupt mode.",
    )


def _modes(f: Any) -> Any:
    for log in reversed(LOGS):
        f = _mode_option(log)(f)
    return f


@click.command("set-event-interrupt-policy", context_settings=CONTEXT)
@memdevs_required
@_modes
@change_options(destructive=False)
@click.pass_context
def set_event_interrupt_policy(ctx: click.Context, /, memdevs: Sequence[str], **opts: Any) -> None:
    """Set how event logs interrupt (Set Event Interrupt Policy, opcode 0x0103).

    Each given log (--info, --warn, --fail, --fatal, --dynamic-capacity) gets the
    interrupt mode none, msi_msix or fw; the others keep what Get Event Interrupt
    Policy reads (`event-interrupt-policy`). Linux configures these itself when the
    driver probes and has no command id for either command: cxlctl sends them
    through RAW (CONFIG_CXL_MEM_RAW_COMMANDS; exit 4 otherwise, saying so; on the
    simulator CXLCTL_SIM_RAW=1). Turning interrupts off under a running kernel
    means it no longer hears about new events. A policy that already matches is
    reported as unchanged. --dry-run prints the ioctl.

    \b
    Examples:
      CXLCTL_SIM_RAW=1 cxlctl --sim set-event-interrupt-policy mem0 --info none
      CXLCTL_SIM_RAW=1 cxlctl --sim set-event-interrupt-policy all --fatal msi_msix --json
      CXLCTL_SIM_RAW=1 cxlctl --sim set-event-interrupt-policy mem0 --warn none --dry-run
    """
    modes = {log: MODES[v] for log in LOGS if (v := opts.pop(log, None)) is not None}
    if not modes:
        raise UsageError(
            "set-event-interrupt-policy: nothing to set: give at least one of "
            + ", ".join("--" + log.replace("_", "-") for log in LOGS)
        )

    def step(md: Memdev) -> tuple[Outcome, str, dict[str, Any]]:
        before, after = md.set_event_interrupt_policy(modes)
        # decoded as `event-interrupt-policy` prints them: one object per log
        details = {
            "before": rd.to_data(mb.GET_EVENT_INTERRUPT_POLICY.decode(before)),
            "after": rd.to_data(mb.GET_EVENT_INTERRUPT_POLICY.decode(after)),
        }
        if before == after:
            return Outcome.UNCHANGED, f"{md.name}: the policy already matches", details
        return Outcome.CHANGED, f"{md.name}: event interrupt policy set", details

    _run(ctx, "set-event-interrupt-policy", memdevs, opts, step)
