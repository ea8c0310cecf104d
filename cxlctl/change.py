"""The safety contract for verbs that change a device: the library half.

Every verb that changes a device (write-labels, zero-labels, disable-memdev,
update-firmware, sanitize, ...) runs its memdevs one at a time through
:func:`run_each`, which turns each into a :class:`Result` -- ``changed``,
``unchanged``, ``failed`` (with the reason and the error's exit code) or, under
``--dry-run``, ``planned`` -- so several memdevs are never all-or-nothing and the
exit code is the worst outcome (:func:`exit_code`).

``--dry-run`` runs the very same code with a :class:`Recorder` attached to the
:class:`~cxlctl.memdev.Memdev` and the backend: every request that would change
the device (a catalogue command marked destructive, any RAW command) and every
sysfs/debugfs write is recorded instead of performed; reads still happen, so the
plan is exactly what a real run would do.  Long operations report progress
through a :data:`ProgressHook`; nothing here prints.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import CxlError, ExitCode

if TYPE_CHECKING:
    from .transport import SendRequest

#: ``hook(done, total, what)``: ``done`` of ``total`` units (bytes) of ``what``.
ProgressHook = Callable[[int, int, str], None]


def no_progress(_done: int, _total: int, _what: str) -> None:
    """The hook used when nobody watches."""


class Outcome(enum.Enum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    PLANNED = "planned"  #: --dry-run: what would change


# --- what would be done (--dry-run) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One change a real run makes: an ioctl, or a write to a sysfs/debugfs file."""

    kind: str  #: "ioctl", "sysfs" or "debugfs"
    target: str  #: the device node or the file
    summary: str  #: e.g. "SET_LSA (0x4103) in.size=2048" or the value written
    fields: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        if self.kind == "ioctl":
            return f"ioctl {self.target} CXL_MEM_SEND_COMMAND {self.summary}"
        return f"write {self.target} <- {self.summary}"

    def json(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, **self.fields}


def _show(data: bytes) -> str:
    """A written value as the shell would type it (``"1\\n"``), or its size."""
    if len(data) <= 64 and all(32 <= b < 127 or b in (0, 9, 10) for b in data):
        return repr(data.decode())
    return f"<{len(data)} bytes>"


class Recorder:
    """Collects the :class:`Step` objects of a dry run, in order; consecutive ioctls
    of one command are kept as (first, count, last), so a 131072-command label
    write costs three entries."""

    def __init__(self) -> None:
        self._groups: list[list[Any]] = []

    @property
    def steps(self) -> list[Step]:
        out: list[Step] = []
        for first, n, last in self._groups:
            out += [first] if n == 1 else [first, last]
        return out

    def _add(self, s: Step) -> None:
        if self._groups and s.kind == "ioctl":
            first = self._groups[-1][0]
            if (first.kind, first.target, first.fields.get("id"), first.fields.get("opcode")) == (
                s.kind,
                s.target,
                s.fields.get("id"),
                s.fields.get("opcode"),
            ):
                self._groups[-1][1] += 1
                self._groups[-1][2] = s
                return
        self._groups.append([s, 1, s])

    def ioctl(self, memdev: str, req: SendRequest) -> None:
        from . import mailbox as mb
        from . import uapi

        name = uapi.COMMAND_NAMES.get(req.id, f"id {req.id}")
        if req.id == uapi.CommandId.RAW:
            cmd = mb.BY_OPCODE.get(req.raw_opcode)
            title = cmd.title if cmd else "?"
            summary = f"RAW opcode {req.raw_opcode:#06x} ({title})"
        else:
            cmd = mb.BY_KERNEL_ID.get(req.id)
            summary = f"id {req.id} {name}" + (f" (opcode {cmd.opcode:#06x})" if cmd else "")
        head = req.payload[:16].hex()
        more = f" +{len(req.payload) - 16} bytes" if len(req.payload) > 16 else ""
        summary += (
            f" flags={req.flags:#x} in.size={req.in_len} out.size={req.out_size}"
            f" in.payload={head}{more}"
        )
        self._add(
            Step(
                "ioctl",
                f"/dev/cxl/{memdev}",
                summary,
                {
                    "id": req.id,
                    "name": name,
                    "opcode": cmd.opcode if cmd else req.raw_opcode,
                    "flags": req.flags,
                    "in_size": req.in_len,
                    "out_size": req.out_size,
                    "in_payload_head": head,
                },
            )
        )

    def write(self, path: str, data: bytes, kind: str = "sysfs") -> None:
        self._add(Step(kind, path, _show(data), {"value": _show(data), "length": len(data)}))

    def note(self, kind: str, target: str, summary: str, **fields: Any) -> None:
        """A step that is neither an ioctl nor a plain write (e.g. a simulated kernel job)."""
        self._add(Step(kind, target, summary, dict(fields)))

    def groups(self) -> list[tuple[Step, int, Step]]:
        return [(g[0], g[1], g[2]) for g in self._groups]

    def lines(self) -> list[str]:
        out = []
        for first, n, last in self.groups():
            out.append(first.line())
            if n > 2:
                out.append(f"  ... {n - 2} more like it ...")
            if n > 1:
                out.append(last.line())
        return out

    def json(self) -> list[dict[str, Any]]:
        out = []
        for first, n, last in self.groups():
            d = first.json()
            if n > 1:
                d["count"] = n
                d["last"] = last.json()
            out.append(d)
        return out


# --- one result per memdev ---------------------------------------------------------


@dataclass(slots=True)
class Result:
    memdev: str
    serial: int | None
    outcome: Outcome
    message: str = ""  #: what was done, or why it failed
    exit_code: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    plan: list[str] = field(default_factory=list)
    plan_json: list[dict[str, Any]] = field(default_factory=list)
    #: what ``memdev`` names: a memdev, or a region, port, bus (the topology verbs)
    kind: str = "memdev"

    @property
    def changed(self) -> bool:
        return self.outcome is Outcome.CHANGED

    def json(self) -> dict[str, Any]:
        d: dict[str, Any] = {self.kind: self.memdev}
        if self.serial is not None:
            d["serial"] = self.serial
        d["changed"] = self.changed
        d["outcome"] = self.outcome.value
        d.update(self.details)
        if self.outcome is Outcome.FAILED:
            d["reason"] = self.message
            d["exit_code"] = self.exit_code
        if self.outcome is Outcome.PLANNED:
            d["plan"] = self.plan_json
        return d


def stopped(e: KeyboardInterrupt, done: str) -> KeyboardInterrupt:
    """The same interruption (SIGINT, SIGTERM, ...), carrying what had been done."""
    e.cxlctl_done = done  # type: ignore[attr-defined]
    return e


def midway(e: CxlError, done: str) -> CxlError:
    """The same error, its message extended by what had been done before it."""
    e.message = f"{e.message}; {done}"
    return e


#: what a verb does to one object: returns (outcome, message, details)
Action = Callable[[str, "Recorder | None"], tuple[Outcome, str, dict[str, Any]]]


def run_each(
    names: Sequence[str],
    action: Action,
    *,
    serial_of: Callable[[str], int | None],
    dry_run: bool = False,
    on_result: Callable[[Result], None] | None = None,
    kind: str = "memdev",
) -> list[Result]:
    """Try ``action`` on every memdev (or region, port, bus: ``kind``) in turn; a
    failure of one never stops the next.
    Ctrl-C stops the run after recording the memdev it interrupted (the action's
    :func:`stopped` says how far it got) and re-raises ``KeyboardInterrupt``."""
    results: list[Result] = []
    for name in names:
        rec = Recorder() if dry_run else None
        try:
            serial = serial_of(name)
        except CxlError:
            serial = None
        try:
            outcome, message, details = action(name, rec)
            if rec is not None:
                outcome = Outcome.PLANNED if outcome is not Outcome.UNCHANGED else outcome
            r = Result(name, serial, outcome, message, 0, details, kind=kind)
            if rec is not None:
                r.plan, r.plan_json = rec.lines(), rec.json()
        except CxlError as e:
            r = Result(name, serial, Outcome.FAILED, e.message, int(e.exit_code), kind=kind)
            if e.hint:
                r.message += f" (hint: {e.hint})"
        except KeyboardInterrupt as e:
            msg = f"{name}: interrupted: {getattr(e, 'cxlctl_done', 'nothing recorded')}"
            code = getattr(e, "exit_code", int(ExitCode.INTERRUPTED))
            r = Result(name, serial, Outcome.FAILED, msg, code, kind=kind)
            results.append(r)
            if on_result:
                on_result(r)
            raise
        results.append(r)
        if on_result:
            on_result(r)
    return results


def exit_code(results: Iterable[Result]) -> int:
    """0 unless something failed; then that failure's code (1 when failures disagree)."""
    codes = {r.exit_code for r in results if r.outcome is Outcome.FAILED}
    if not codes:
        return 0
    return codes.pop() if len(codes) == 1 else int(ExitCode.FAILURE)
