"""Memdev administration: disable-memdev, enable-memdev, set-alert-config.

Like cxl-cli: disable/enable unbind and bind the memdev from cxl_mem through sysfs,
refusing (without --force) to disable a memdev whose endpoint decoders are
committed; set-alert-config takes cxl-cli's option names and its rules.
Per-memdev results go to stderr; ``--json`` prints them on stdout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import click

from ..change import Outcome, ProgressHook, Recorder
from ..errors import DeviceBusy, UnsupportedCommand, UsageError
from ..mailbox.health import Alert, SetAlertConfig, set_alert_config_request
from ..memdev import Memdev
from . import CONTEXT, App, app_of, memdevs_required, selected
from .change import Change, change_options
from .options import Size, force_option

Row = dict[str, Any]


def note(message: str) -> None:
    from . import output

    output.message(f"cxlctl: {message}")


# --- disable-memdev / enable-memdev ---------------------------------------------------


def _active_region_check(app: App, name: str, force: bool) -> None:
    """libcxl: a memdev whose endpoint port has committed decoders is part of an
    active region; disabling it takes the region's memory away."""
    committed = app.backend.decoders_committed(name)
    if committed == 0:
        return
    if committed is None:
        why = f"{name}: no endpoint port found: cannot tell whether it is part of an active region"
    else:
        why = f"{name} is part of an active region ({committed} committed endpoint decoders)"
    if not force:
        raise DeviceBusy(
            why, hint="--force disables it anyway (DANGEROUS: the region's memory goes away)"
        )
    note(f"{why}; DANGEROUS: disabling anyway (--force)")


@click.command("disable-memdev", context_settings=CONTEXT)
@memdevs_required
@force_option
@change_options(destructive=False)
@click.pass_context
def disable_memdev(ctx: click.Context, /, memdevs: Sequence[str], force: bool, **opts: Any) -> None:
    """Unbind memdevs from the cxl_mem driver (state change), like `cxl disable-memdev`.

    Writes the name to /sys/bus/cxl/devices/memN/driver/unbind (root). This takes
    down the memdev's endpoint port and nvdimm bridge, so the label area is no
    longer owned by the kernel and write-labels/zero-labels can run;
    /dev/cxl/memN keeps answering commands. A memdev whose endpoint decoders are
    committed (part of an active region) is refused unless --force, which is
    DANGEROUS: the region's memory goes away. Each memdev is tried and reported
    on its own (changed, unchanged when already disabled, failed with the
    reason); the exit code is the worst outcome. --dry-run prints the sysfs
    write. `list` shows "state": "disabled" until `enable-memdev`. On --sim the
    state lasts for the process, or between runs with CXLCTL_SIM_STATE set.

    \b
    Examples:
      cxlctl --sim disable-memdev mem0
      cxlctl --sim disable-memdev mem0 mem2 --json
      cxlctl --sim disable-memdev mem0 --dry-run
      cxlctl --sim enable-memdev mem0 mem2
      cxlctl disable-memdev mem0
    """
    app = app_of(ctx)
    change = Change(app, "disable-memdev", opts)

    def action(name: str, rec: Recorder | None, _hook: ProgressHook) -> Any:
        if not app.backend.enabled(name):
            return Outcome.UNCHANGED, f"{name}: already disabled", {"state": "disabled"}
        _active_region_check(app, name, force)
        app.backend.disable(name, rec)
        return Outcome.CHANGED, f"{name}: disabled", {"state": "disabled"}

    change.run(selected(ctx, memdevs), action)


@click.command("enable-memdev", context_settings=CONTEXT)
@memdevs_required
@change_options(destructive=False)
@click.pass_context
def enable_memdev(ctx: click.Context, /, memdevs: Sequence[str], **opts: Any) -> None:
    """Bind memdevs to the cxl_mem driver again (state change), like `cxl enable-memdev`.

    Writes the name to /sys/bus/cxl/drivers/cxl_mem/bind (root); the kernel probes
    the memdev again and, for a device with persistent capacity, the nvdimm
    bridge claims the label area again. A memdev already enabled is left alone
    (unchanged). --dry-run prints the sysfs write.

    \b
    Examples:
      cxlctl --sim enable-memdev mem0
      cxlctl --sim enable-memdev all --json
      cxlctl enable-memdev mem0
    """
    app = app_of(ctx)
    change = Change(app, "enable-memdev", opts)

    def action(name: str, rec: Recorder | None, _hook: ProgressHook) -> Any:
        if app.backend.enabled(name):
            return Outcome.UNCHANGED, f"{name}: already enabled", {"state": "enabled"}
        app.backend.enable(name, rec)
        return Outcome.CHANGED, f"{name}: enabled", {"state": "enabled"}

    change.run(selected(ctx, memdevs), action)


# --- set-alert-config --------------------------------------------------------------

#: (option stem, alert, threshold range), in bit order
ALERTS: tuple[tuple[str, Alert, Size], ...] = (
    ("life_used", Alert.LIFE_USED, Size(8, units=False, maximum=100)),
    ("over_temperature", Alert.OVER_TEMPERATURE, Size(16, units=False, signed=True)),
    ("under_temperature", Alert.UNDER_TEMPERATURE, Size(16, units=False, signed=True)),
    ("volatile_mem_err", Alert.CORRECTED_VOLATILE, Size(16, units=False)),
    ("pmem_err", Alert.CORRECTED_PERSISTENT, Size(16, units=False)),
)
_LETTERS = {"life_used": "-L", "over_temperature": "-O", "under_temperature": "-U"}
_LETTERS |= {"volatile_mem_err": "-V", "pmem_err": "-P"}
_WHAT = {
    "life_used": "life used (percent)",
    "over_temperature": "device over-temperature (degrees C)",
    "under_temperature": "device under-temperature (degrees C)",
    "volatile_mem_err": "corrected volatile memory error count",
    "pmem_err": "corrected persistent memory error count",
}


def _opt(stem: str) -> str:
    return stem.replace("_", "-")


def alert_actions(params: dict[str, Any]) -> SetAlertConfig:
    """cxl-cli's rules: a threshold needs its alert ``on``; ``on`` needs a threshold;
    ``off`` takes none; something must be turned on or off. -> the typed request."""
    changes: dict[Alert, int | None] = {}
    for stem, alert_bit, _ in ALERTS:
        threshold, alert = params[f"{stem}_threshold"], params[f"{stem}_alert"]
        opt = _opt(stem)
        if alert is None:
            if threshold is not None:
                raise UsageError(f"Action not specified: --{opt}-threshold needs --{opt}-alert on")
            continue
        if alert == "on":
            if threshold is None:
                raise UsageError(
                    f"Threshold not specified: --{opt}-alert on needs --{opt}-threshold"
                )
        elif threshold is not None:
            raise UsageError(f"--{opt}-alert off takes no threshold (drop --{opt}-threshold)")
        changes[alert_bit] = threshold
    if not changes:
        raise UsageError(
            "Action not specified: turn an alert on or off "
            "(e.g. --life-used-alert on --life-used-threshold 80)"
        )
    return set_alert_config_request(changes)


def _alert_options(f: Any) -> Any:
    for stem, _, rng in reversed(ALERTS):
        opt = _opt(stem)
        f = click.option(
            f"--{opt}-alert",
            f"{stem}_alert",
            type=click.Choice(["on", "off"]),
            help=f"Turn the {_WHAT[stem]} warning alert on (needs a threshold) or off.",
        )(f)
        f = click.option(
            _LETTERS[stem],
            f"--{opt}-threshold",
            f"{stem}_threshold",
            type=rng,
            help=f"Warning threshold: {_WHAT[stem]}.",
        )(f)
    return f


@click.command("set-alert-config", context_settings=CONTEXT)
@memdevs_required
@_alert_options
@change_options(destructive=False)
@click.pass_context
def set_alert_config(ctx: click.Context, /, memdevs: Sequence[str], **params: Any) -> None:
    """Set the device's programmable warning thresholds (Set Alert Configuration,
    opcode 0x4202; device configuration), with cxl-cli's options.

    To enable a warning alert give its threshold and `on` (--life-used-threshold
    80 --life-used-alert on); to disable it give only `off`. Anything else is a
    usage error ("Action not specified"), as in cxl-cli. Only the alerts named
    change. The device answers Invalid Input (exit 3) for a threshold it does not
    make programmable, a life used warning not below the critical threshold, or a
    temperature warning outside the critical ones; `alert-config` shows the
    result. Linux enables the command only when the device lists it (QEMU's
    cxl-type3 does not: exit 4). Each memdev is reported on its own; --dry-run
    prints the ioctl. On --sim the change lasts for the process, or between runs
    with CXLCTL_SIM_STATE set.

    \b
    Examples:
      cxlctl --sim set-alert-config mem0 -L 80 --life-used-alert on
      cxlctl --sim set-alert-config mem0 -O 60 --over-temperature-alert on --json
      cxlctl --sim set-alert-config mem0 -P 100 --pmem-err-alert on --dry-run
      cxlctl --sim set-alert-config mem0 --over-temperature-alert off
      cxlctl set-alert-config mem0 -V 20 --volatile-mem-err-alert on
    """
    from .info import cxl_alert_config_json

    app = app_of(ctx)
    change = Change(app, "set-alert-config", params)
    request = alert_actions(params)

    def action(name: str, rec: Recorder | None, _hook: ProgressHook) -> Any:
        md = Memdev(app.backend, name)
        md.recorder = rec
        try:
            try:
                md.set_alert_config(request)
            except UnsupportedCommand as e:
                raise UnsupportedCommand(
                    f"{name}: set-alert-config: Set Alert Configuration (opcode 0x4202) is "
                    "not enabled for this device [ENOTTY]",
                    hint="Linux enables it only when the device's Command Effects Log lists "
                    f"it (QEMU's cxl-type3 does not); see `cxlctl query {name}`",
                ) from e
            row: Row = {
                "valid_alert_actions": int(request.valid),
                "enable_alert_actions": int(request.enable),
            }
            # no Get Alert Configuration: leave the block out, as cxl-cli does
            if rec is None:
                with contextlib.suppress(UnsupportedCommand, DeviceBusy):
                    row["alert_config"] = cxl_alert_config_json(md)
        finally:
            md.close()
        return Outcome.CHANGED, f"{name}: alert configuration set", row

    change.run(selected(ctx, memdevs), action)
