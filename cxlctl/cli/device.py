"""Changing the device itself: update-firmware, sanitize, secure-erase, wait-sanitize,
inject-media-poison, clear-media-poison (cxl-cli 85's names and letters).

All follow the safety contract of :mod:`cxlctl.cli.change`; the work is done by the
kernel through sysfs/debugfs exactly as cxl-cli does (:mod:`cxlctl.devops`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import click

from .. import devops
from ..change import Outcome, ProgressHook, Recorder, midway, stopped
from ..errors import CxlError, UsageError, file_error
from ..memdev import Memdev
from . import CONTEXT, App, app_of, complete, memdevs_required, selected
from .change import Action, Change, change_options
from .options import Duration, Size, memdevs_argument, output_option

#: the largest image cxlctl reads (QEMU's devices take at most 32 MiB)
IMAGE_LIMIT = 256 << 20


def _read_image(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(IMAGE_LIMIT + 1)
    except OSError as e:
        raise file_error("update-firmware", path, e, usage=True) from None
    if not data:
        raise UsageError(f"update-firmware: {path} is empty: nothing to send")
    if len(data) > IMAGE_LIMIT:
        raise UsageError(f"update-firmware: {path} is larger than 256 MiB")
    return data


def _fw_details(app: Any, name: str) -> dict[str, Any]:
    from .basic import _firmware_json

    md = Memdev(app.backend, name)
    try:
        return {"firmware": _firmware_json(md, app.backend)}
    except CxlError:
        return {}
    finally:
        md.close()


@click.command("update-firmware", context_settings=CONTEXT)
@memdevs_required
@click.option(
    "-F",
    "--firmware-file",
    metavar="FILE",
    shell_complete=complete.files,
    help="The firmware image to transfer.",
)
@click.option("-w", "--wait", is_flag=True, help="Wait until the transfer has finished.")
@click.option("-c", "--cancel", is_flag=True, help="Cancel a running firmware update.")
@change_options(destructive=True)
@click.pass_context
def update_firmware(
    ctx: click.Context,
    /,
    memdevs: Sequence[str],
    firmware_file: str | None,
    wait: bool,
    cancel: bool,
    **opts: Any,
) -> None:
    """DESTRUCTIVE: transfer a firmware image to memdevs, like `cxl update-firmware`.

    As cxl-cli, through the kernel's firmware-upload class: writes 1 to
    /sys/.../memN/firmware/memN/loading, the image into data in 4096-byte
    writes, 0 to loading. The kernel then sends the image to the device with
    Transfer FW (opcode 0x0201, a background operation, in slices of payload_max
    minus the 128-byte header) into the slot after the active one and activates
    it for the next reset (Activate FW, offline): `fw-info` then shows it as the
    staged slot. Without -w the command returns once the kernel has the image
    (`list -F` shows fw_update_in_progress and remaining_size); -w waits, with a
    progress bar on a terminal. -w without -F waits for a running update; -c
    cancels one (the kernel sends Transfer FW with the abort action). Asks for
    confirmation on a terminal (naming the memdev and its serial); without one,
    pass -y/--yes. --dry-run prints the sysfs writes.

    \b
    Examples:
      cxlctl --sim update-firmware mem0 -F fw.bin -w --dry-run
      cxlctl --sim update-firmware mem0 -F fw.bin -w -y --json
      cxlctl --sim fw-info mem0
      cxlctl update-firmware mem0 -F fw.bin
      cxlctl update-firmware mem0 --cancel
    """
    app = app_of(ctx)
    names = selected(ctx, memdevs)
    if cancel and (firmware_file or wait):
        raise UsageError("update-firmware: --cancel takes neither -F nor -w")
    if not (cancel or firmware_file or wait):
        raise UsageError(
            "update-firmware: nothing to do: give -F FILE (and -w to wait), -w or --cancel"
        )
    image = _read_image(firmware_file) if firmware_file else b""
    change = Change(
        app,
        "update-firmware",
        opts,
        destroys="the staged firmware slot" if image else None,
    )

    def action(name: str, rec: Recorder | None, hook: ProgressHook) -> Any:
        up = devops.FirmwareUpload(app.backend, name)
        up.require()
        if cancel:
            if not up.cancel(rec):
                return Outcome.UNCHANGED, f"{name}: no firmware update was running", {}
            return Outcome.CHANGED, f"{name}: firmware update cancelled", {}
        if image:
            up.start(image, rec, hook)
            if rec is not None:
                return Outcome.CHANGED, f"{name}: {len(image)}-byte image", {}
            if not wait:
                msg = f"{name}: firmware update started ({len(image)} bytes)"
                return Outcome.CHANGED, msg, _fw_details(app, name)
        st = up.state()
        if rec is not None or (not st.in_progress and not image):
            return Outcome.UNCHANGED, f"{name}: no firmware update in progress", {}
        try:
            up.wait(len(image) or st.remaining_size, hook)
        except KeyboardInterrupt as e:
            # the kernel's worker owns the transfer now: it goes on without cxlctl
            left = ""
            with contextlib.suppress(CxlError):
                left = f", {up.state().remaining_size} bytes left"
            raise stopped(
                e,
                f"stopped waiting; the {'image was handed to the kernel and the ' if image else ''}"
                f"update goes on without cxlctl{left}: `cxlctl update-firmware {name} -w` "
                f"waits for it, `-c` cancels it",
            ) from None
        details = _fw_details(app, name)
        staged = details.get("firmware", {}).get("staged_slot")
        msg = f"{name}: firmware update completed" + (
            f": slot {staged} staged for the next reset" if staged else ""
        )
        return Outcome.CHANGED if image else Outcome.UNCHANGED, msg, details

    change.run(names, action)


ERASE_NOTE = (
    " The file exists only when the device lists Secure Erase in its CEL"
    " (QEMU 10's cxl-type3 does not: exit 4)."
)
ASK_NOTE = (
    " Asks for confirmation on a terminal (naming the memdev and its serial);"
    " without one, pass -y/--yes."
)


#: an interrupted wait for a sanitize: the device goes on (nothing can stop it)
_WIPE_GOES_ON = (
    "stopped waiting; {verb} goes on in the device (it cannot be stopped; until it ends "
    "the kernel refuses every mailbox command but Get Health Info): "
    "`cxlctl wait-sanitize {name}` waits for it"
)


def _sanitize_cmd(erase: bool) -> click.Command:
    verb = "secure-erase" if erase else "sanitize"
    title = "Secure Erase (opcode 0x4401)" if erase else "Sanitize (opcode 0x4400)"
    attr = "erase" if erase else "sanitize"

    @click.command(verb, context_settings=CONTEXT)
    @memdevs_required
    @click.option("-w", "--wait", is_flag=True, help="Wait until it has finished.")
    @change_options(destructive=True)
    @click.pass_context
    def cmd(ctx: click.Context, /, memdevs: Sequence[str], wait: bool, **opts: Any) -> None:
        app = app_of(ctx)
        change = Change(app, verb, opts, destroys="ALL user data and the labels")

        def action(name: str, rec: Recorder | None, hook: ProgressHook) -> Any:
            devops.start_sanitize(app.backend, name, erase, rec)
            try:
                if rec is None and wait and not devops.wait_sanitize(app.backend, name, None, hook):
                    raise CxlError(f"{name}: {verb} did not finish")
            except KeyboardInterrupt as e:  # the device goes on: it cannot be stopped
                raise stopped(e, _WIPE_GOES_ON.format(verb=verb, name=name)) from None
            state = "started" if rec is not None or not wait else "completed"
            return Outcome.CHANGED, f"{name}: {verb} {state}", {"waited": wait}

        change.run(selected(ctx, memdevs), action)

    cmd.help = f"""DESTRUCTIVE: {verb} memdevs: the device erases ALL user data and the labels.

    As the kernel offers it: writes 1 to /sys/bus/cxl/devices/memN/security/{attr};
    the kernel sends {title}, a background operation, and polls it; meanwhile
    security/state reads `sanitize`, the mailbox is busy (EBUSY) and the media is
    disabled. Refused while the memdev is part of an active region (the kernel
    refuses with EBUSY while an endpoint decoder is committed). -w waits until it
    has finished (or use `wait-sanitize`).{ERASE_NOTE if erase else ""} Asks for
    confirmation on a terminal (naming the memdev and its serial); without one,
    pass -y/--yes. --dry-run prints the write.

    \b
    Examples:
      cxlctl --sim {verb} mem1 --dry-run
      cxlctl --sim {verb} mem1 -y -w --json
      cxlctl {verb} mem0 && cxlctl wait-sanitize mem0
    """
    return cmd


sanitize = _sanitize_cmd(False)
secure_erase = _sanitize_cmd(True)


@click.command("wait-sanitize", context_settings=CONTEXT)
@memdevs_argument
@click.option(
    "-t",
    "--timeout",
    type=Duration(),
    help="Give up after MS milliseconds (500, 2s) [default: wait forever].",
)
@output_option()
@click.pass_context
def wait_sanitize(
    ctx: click.Context,
    memdevs: Sequence[str],
    timeout: int | None,
    output: str,
    as_json: bool,
) -> None:
    """Wait until a running sanitize (or secure erase) has finished, like `cxl wait-sanitize`.

    Polls /sys/bus/cxl/devices/memN/security/state until it no longer reads
    `sanitize`, as cxl-cli; returns at once when none runs. Writes nothing. No
    MEMDEV (or `all`) waits for every memdev. With
    -t a memdev still sanitizing after MS milliseconds is a failure (exit 1).
    On a terminal the wait shows a progress line.

    \b
    Examples:
      cxlctl --sim sanitize mem1 -y && cxlctl --sim wait-sanitize mem1
      cxlctl --sim wait-sanitize all -t 500 --json
    """
    app = app_of(ctx)
    change = Change(app, "wait-sanitize", {"output": output, "as_json": as_json})

    def action(name: str, _rec: Recorder | None, hook: ProgressHook) -> Any:
        try:
            w = devops.wait_sanitize(app.backend, name, timeout, hook)
        except KeyboardInterrupt as e:
            raise stopped(e, _WIPE_GOES_ON.format(verb="a sanitize", name=name)) from None
        if not w:
            raise CxlError(w.summary(name))
        details = {"waited": w.waited, "waited_ms": w.ms, "security_state": w.state}
        return Outcome.UNCHANGED, w.summary(name), details

    change.run(selected(ctx, memdevs), action)


def poison_action(app: App, inject: bool, dpas: Sequence[int]) -> Action:
    """Inject (or clear) poison at each DPA of one memdev: inject-media-poison,
    clear-media-poison and `poison --inject/--clear` all run this."""

    def action(name: str, rec: Recorder | None, _hook: ProgressHook) -> Any:
        done: list[int] = []
        for dpa in dpas:
            if dpa % 64:
                raise UsageError(f"{name}: dpa:{dpa:#x} is not 64-byte aligned [EINVAL]")
            try:
                if inject:
                    app.backend.inject_poison(name, dpa, rec)
                else:
                    app.backend.clear_poison(name, dpa, rec)
            except CxlError as e:
                if done:
                    raise midway(e, f"done before it: {', '.join(hex(d) for d in done)}") from e
                raise
            done.append(dpa)
        verb = "poisoned" if inject else "cleared"
        where = ", ".join(f"{d:#x}" for d in dpas)
        details: dict[str, Any] = {"address": dpas[0]} if len(dpas) == 1 else {}
        if len(dpas) > 1:
            details["addresses"] = list(dpas)
        return Outcome.CHANGED, f"{name}: {verb} 64 bytes at DPA {where}", details

    return action


def run_poison(
    app: App,
    names: Sequence[str],
    inject: bool,
    dpas: Sequence[int],
    opts: dict[str, Any],
    *,
    report: bool = True,
) -> None:
    verb = "inject-media-poison" if inject else "clear-media-poison"
    where = ", ".join(f"{d:#x}" for d in dpas)
    destroys = f"the data at DPA {where}" if inject else None
    change = Change(app, verb, opts, destroys=destroys, report=report)
    change.run(names, poison_action(app, inject, dpas))


def _poison_cmd(inject: bool) -> click.Command:
    verb = "inject-media-poison" if inject else "clear-media-poison"
    attr = "inject_poison" if inject else "clear_poison"

    @click.command(verb, context_settings=CONTEXT)
    @memdevs_required
    @click.option(
        "-a",
        "--address",
        type=Size(metavar="ADDRESS"),
        help="Device physical address (64-byte aligned) [required].",
    )
    @change_options(destructive=inject)
    @click.pass_context
    def cmd(
        ctx: click.Context, /, memdevs: Sequence[str], address: int | None, **opts: Any
    ) -> None:
        app = app_of(ctx)
        names = selected(ctx, memdevs)
        if address is None:
            raise UsageError(f"{verb}: missing option -a/--address")
        run_poison(app, names, inject, [address], opts)

    what = "DESTRUCTIVE: inject" if inject else "Clear"
    mbox = "Inject Poison (opcode 0x4301)" if inject else "Clear Poison (opcode 0x4302)"
    cmd.help = f"""{what} media poison at a DPA, like cxl-cli 85's `{verb}`.

    Writes the DPA to debugfs /sys/kernel/debug/cxl/MEMDEV/{attr} (root); the
    kernel checks 64-byte alignment and the device's capacity (EINVAL) and sends
    {mbox}. `poison MEMDEV` or `list -L` shows the result.{ASK_NOTE if inject else ""}
    --dry-run prints the write. `poison MEMDEV --{"inject" if inject else "clear"} DPA`
    is the same operation.

    \b
    Examples:
      cxlctl --sim {verb} mem0 -a 0x1000 --dry-run
      cxlctl --sim {verb} mem0 -a 0x1000{" -y" if inject else ""} --json
      cxlctl {verb} mem0 mem1 -a 4096
    """
    return cmd


inject_media_poison = _poison_cmd(True)
clear_media_poison = _poison_cmd(False)


_DPORT_RE = r"[A-Za-z0-9][A-Za-z0-9:._-]*"


@click.command("inject-protocol-error", context_settings=CONTEXT)
@click.argument("dports", nargs=-1, required=True, metavar="DPORT...")
@click.option(
    "-p",
    "--protocol",
    type=click.Choice(["mem", "cache"]),
    default="mem",
    show_default=True,
    help="CXL.mem or CXL.cache.",
)
@click.option(
    "-s",
    "--severity",
    type=click.Choice(["correctable", "uncorrectable", "fatal"]),
    required=True,
    help="Correctable, uncorrectable (non-fatal) or fatal [required].",
)
@change_options(destructive=True)
@click.pass_context
def inject_protocol_error(
    ctx: click.Context, /, dports: Sequence[str], protocol: str, severity: str, **opts: Any
) -> None:
    """DESTRUCTIVE: inject a CXL protocol error at a dport, like cxl-cli 85's verb.

    Through ACPI EINJ, as the kernel offers it (Linux 6.9+,
    CONFIG_ACPI_APEI_EINJ_CXL): the platform's CXL error types are in debugfs
    /sys/kernel/debug/cxl/einj_types; cxlctl checks that the one asked for is
    offered and writes it to /sys/kernel/debug/cxl/DPORT/einj_inject, where DPORT
    is a root port or switch downstream port (a PCI device name such as
    0000:0c:00.0; `list -P -T` shows them). An uncorrectable or fatal error can
    take the system down. Where the kernel does not create einj_types (no EINJ
    table, as on QEMU, whose platform the simulator models) it fails with exit 4,
    saying so. Asks for confirmation on a terminal; without one, pass -y/--yes.
    --dry-run prints the write.

    \b
    Examples:
      cxlctl --sim inject-protocol-error 0000:0d:00.0 -p mem -s correctable --dry-run
      cxlctl inject-protocol-error 0000:0c:00.0 -p cache -s uncorrectable -y --json
    """
    import re

    app = app_of(ctx)
    for d in dports:
        if not re.fullmatch(_DPORT_RE, d) or ".." in d:
            raise UsageError(f"inject-protocol-error: {d!r} is not a dport device name")
    error_type = devops.PROTOCOL_ERRORS[(protocol, severity)]
    change = Change(
        app,
        "inject-protocol-error",
        opts,
        destroys=None,
        asks=f"inject a CXL.{protocol} {severity} protocol error (it may stop the link) at",
        kind="dport",
    )

    def action(dport: str, rec: Recorder | None, _hook: ProgressHook) -> Any:
        name = devops.inject_protocol_error(app.backend, dport, error_type, rec)
        details = {"error_type": error_type, "error_name": name}
        return Outcome.CHANGED, f"{dport}: injected {error_type:#x} ({name})", details

    change.run(list(dports), action)
