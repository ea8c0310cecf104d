"""The catalogue is the single source of truth: everything else agrees with it.

:func:`disagreements` compares the catalogue (cxlctl/mailbox/__init__.py) with
everything that names a mailbox command -- the simulated device's handlers and
CEL, the simulated kernel's command table, the CLI verbs, completion candidates,
help lists -- and with what real Linux 6.12 + QEMU 10 reported (the QUERY table
and the CEL of tests/data/reference).  It returns one line per disagreement; the
tests below prove it notices a handler, a CLI verb, a record's verb, a CEL effect
or a kernel size going missing or wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click
import pytest

from cxlctl import mailbox as mb
from cxlctl import uapi
from cxlctl.cli import COMMANDS, complete, main
from cxlctl.mailbox.logs import CEL_EFFECTS
from cxlctl.record import as_dict
from cxlctl.sim import make_devices
from cxlctl.sim.device.model import HANDLERS, QEMU_CEL, Handler
from cxlctl.sim.driver.mbox import (
    BRIDGE_EXCLUSIVE,
    DISABLED_RAW_OPCODES,
    FORCE_ENABLED,
    MEM_COMMANDS,
    MemCommand,
)

REF = Path(__file__).parent / "data" / "reference" / "linux-6.12-qemu-10-one-pmem-device.txt"
REF_TEXT = REF.read_text()

#: CLI verbs that are not one mailbox command's: listing, the kernel's table,
#: pass-through, offline decoding, shell completion, batches, trace streaming, and
#: the sysfs verbs (binding, regions, DPA, ports, the bus).
GENERIC_VERBS = frozenset(
    {"list", "query", "send", "raw", "decode", "completion", "batch", "monitor",
     "disable-memdev", "enable-memdev", "create-region", "destroy-region",
     "enable-region", "disable-region", "reserve-dpa", "free-dpa", "enable-port",
     "disable-port", "disable-bus", "wait-sanitize", "inject-protocol-error"}
)  # fmt: skip
#: What Linux 6.12 sends itself (probe, poison listing, debugfs, event handling):
#: the simulated kernel drives these, so the simulated device must answer them.
KERNEL_INTERNAL = (
    mb.GET_EVENT_RECORDS, mb.CLEAR_EVENT_RECORDS, mb.SET_TIMESTAMP, mb.GET_POISON_LIST,
    mb.INJECT_POISON, mb.CLEAR_POISON,
)  # fmt: skip
#: Linux 6.12's ``cxl_disabled_raw_commands[]`` (drivers/cxl/core/mbox.c): Activate
#: FW, Set Partition Info, Set LSA, Set Shutdown State, Scan Media, Get Scan Media
#: Results, Get Poison List, Inject Poison, Clear Poison.
LINUX_DISABLED_RAW = frozenset(
    {0x0202, 0x4101, 0x4103, 0x4204, 0x4304, 0x4305, 0x4300, 0x4301, 0x4302}
)
#: what cxl_pmem_init() sets in ``exclusive_cmds`` (drivers/cxl/pmem.c)
LINUX_BRIDGE_EXCLUSIVE = frozenset({uapi.CommandId.SET_SHUTDOWN_STATE, uapi.CommandId.SET_LSA})
#: Command Effect bits that mean the command changes the device (Table 8-75: bits
#: 0-5, config/data/policy/log/security changes, and 6, a background operation).
CHANGE_EFFECTS = 0x7F


def reference_query() -> dict[int, tuple[int, int]]:
    """Kernel id -> (size_in, size_out) from real Linux 6.12's QUERY table."""
    out: dict[int, tuple[int, int]] = {}
    table = REF_TEXT.split("QUERY_COMMANDS(n_commands=25)", 1)[1].split("\n\n", 1)[0]
    for line in table.splitlines()[2:]:
        m = re.match(r"^\s+\d+\s+(\d+)\s+.+?\s+(\d+|var\(~0\))\s+(\d+|var\(~0\))$", line)
        assert m, line
        cid = int(m.group(1))
        if cid:
            sizes = [
                uapi.CXL_VARIABLE_PAYLOAD if g.startswith("var") else int(g) for g in m.groups()[1:]
            ]
            out[cid] = (sizes[0], sizes[1])
    return out


def reference_cel() -> dict[int, int]:
    """Opcode -> Command Effect from QEMU 10's CEL (as Linux read it)."""
    return {
        int(op, 16): int(eff, 16)
        for op, eff in re.findall(
            r"CEL\[\s*\d+\] opcode=(0x[0-9a-f]+) effects=(0x[0-9a-f]+)", REF_TEXT
        )
    }


def _replace(c: mb.Command[Any], **changes: Any) -> mb.Command[Any]:
    return mb.Command(**{**as_dict(c), **changes})


def _help(name: str) -> str:
    ctx = click.Context(main, info_name="cxlctl")
    cmd = main.get_command(ctx, name)
    assert cmd is not None, name
    return cmd.help or ""


def _sets_agree(
    what: str, sim: set[int], records: set[int], linux: frozenset[int], fmt: str = "{}"
) -> list[str]:
    def show(xs: Iterable[int]) -> str:
        return ", ".join(fmt.format(x) for x in sorted(xs))

    out = []
    if sim != records:
        out.append(f"simulated kernel's {what} [{show(sim)}], catalogue [{show(records)}]")
    if records != linux:
        out.append(f"catalogue's {what} [{show(records)}], Linux 6.12 [{show(linux)}]")
    return out


def disagreements(
    catalogue: Iterable[mb.Command[Any]] = mb.CATALOGUE,
    *,
    handlers: Mapping[int, Handler] = HANDLERS,
    cli_verbs: Iterable[str] = COMMANDS,
    mem_commands: Iterable[MemCommand] = MEM_COMMANDS,
    force_enabled: Iterable[int] = FORCE_ENABLED,
    disabled_raw: Iterable[int] = DISABLED_RAW_OPCODES,
    bridge_exclusive: Iterable[int] = BRIDGE_EXCLUSIVE,
) -> list[str]:
    """Every way the catalogue and the rest of the tree disagree (empty: they agree)."""
    cat = tuple(catalogue)
    verbs = set(cli_verbs)
    out: list[str] = []
    by_opcode = {c.opcode: c for c in cat}
    names = [c.name for c in cat] + [a for c in cat for a in c.aliases]
    out += [f"name or alias {n!r} is used twice" for n in set(names) if names.count(n) > 1]
    if len(by_opcode) != len(cat):
        out.append("two records share an opcode")
    for c in cat:
        const = c.name.upper().replace("-", "_")
        if getattr(mb, const, None) is not c and c in mb.CATALOGUE:
            out.append(f"{c.name}: no catalogue constant mb.{const}")
        # the simulated device answers what Linux has an id for, what a CLI verb
        # sends and what the simulated kernel sends itself
        if (
            c.kernel_id is not None or c.verbs or c in KERNEL_INTERNAL
        ) and c.opcode not in handlers:
            out.append(f"{c.name}: no simulator handler for opcode {c.opcode:#06x}")
        out += [
            f"{c.name}: CLI verb {v!r} is not in cli COMMANDS" for v in c.verbs if v not in verbs
        ]
        if c.effects & CHANGE_EFFECTS and not c.destructive:
            out.append(f"{c.name}: CEL effect {c.effects:#06x} changes the device: destructive")
    for op in handlers:
        if op not in by_opcode:
            out.append(f"simulator handler for {op:#06x} has no catalogue record")
    named = {v for c in cat for v in c.verbs}
    out += [
        f"CLI verb {v!r} names no catalogue record" for v in sorted(verbs - named - GENERIC_VERBS)
    ]
    # the simulated kernel's table: from the catalogue, and as real Linux 6.12 has it
    table = {m.id: m for m in mem_commands}
    with_id = {c.kernel_id: c for c in cat if c.kernel_id is not None}
    for cid, c in with_id.items():
        m = table.get(cid)
        want = (mb.kernel_size(c.kernel_size_in), mb.kernel_size(c.kernel_size_out))
        if m is None or (m.opcode, m.size_in, m.size_out) != (c.opcode, *want):
            out.append(f"{c.name}: simulated kernel table entry {m} disagrees")
    out += [
        f"simulated kernel id {cid} has no catalogue record" for cid in set(table) - set(with_id)
    ]
    ref = reference_query()
    for cid, sizes in ref.items():
        rec = with_id.get(cid)
        if rec is None:
            out.append(f"Linux 6.12 id {cid} has no catalogue record")
        elif (mb.kernel_size(rec.kernel_size_in), mb.kernel_size(rec.kernel_size_out)) != sizes:
            out.append(f"{rec.name}: kernel sizes differ from Linux 6.12's {sizes}")
    out += [f"{with_id[cid].name}: Linux 6.12 has no id {cid}" for cid in set(with_id) - set(ref)]
    forced = {c.kernel_id for c in with_id.values() if c.kernel_force_enable}
    if set(force_enabled) != forced:
        out.append(f"simulated kernel force-enables {set(force_enabled)}, catalogue {forced}")
    # the RAW deny list and the bridge's claim: the simulated kernel's, the
    # records', and Linux 6.12's
    raw = {c.opcode for c in cat if c.raw_disabled}
    out += _sets_agree("RAW deny list", set(disabled_raw), raw, LINUX_DISABLED_RAW, "{:#06x}")
    claimed = {c.kernel_id for c in cat if c.bridge_exclusive and c.kernel_id is not None}
    out += _sets_agree(
        "nvdimm bridge's exclusive ids", set(bridge_exclusive), claimed, LINUX_BRIDGE_EXCLUSIVE
    )
    # the CEL: the device reports the records' effects, which are QEMU 10's
    for op, eff in reference_cel().items():
        rec = by_opcode.get(op)
        if rec is None or rec.effects != eff:
            out.append(
                f"{op:#06x}: CEL effect {eff:#06x} of QEMU 10, catalogue says {rec and rec.effects}"
            )
    return out


def test_the_catalogue_and_everything_else_agree() -> None:
    assert disagreements() == []


def test_a_missing_handler_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(HANDLERS, mb.GET_HEALTH_INFO.opcode)
    assert disagreements() == ["get-health-info: no simulator handler for opcode 0x4200"]
    monkeypatch.undo()
    assert disagreements(handlers={**HANDLERS, 0x7777: HANDLERS[0x4000]}) == [
        "simulator handler for 0x7777 has no catalogue record"
    ]


def test_a_missing_cli_verb_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(COMMANDS, "health")
    assert disagreements() == ["get-health-info: CLI verb 'health' is not in cli COMMANDS"]


def test_a_verb_no_record_names_is_reported() -> None:
    cat = [_replace(c, verbs=()) if c is mb.IDENTIFY else c for c in mb.CATALOGUE]
    assert disagreements(cat) == ["CLI verb 'identify' names no catalogue record"]
    assert disagreements(cli_verbs=[*COMMANDS, "frobnicate"]) == [
        "CLI verb 'frobnicate' names no catalogue record"
    ]


def test_a_removed_record_is_reported() -> None:
    cat = [c for c in mb.CATALOGUE if c is not mb.GET_TIMESTAMP]
    assert set(disagreements(cat)) == {
        "simulator handler for 0x0300 has no catalogue record",
        "CLI verb 'timestamp' names no catalogue record",
        "simulated kernel id 21 has no catalogue record",
        "Linux 6.12 id 21 has no catalogue record",
        "0x0300: CEL effect 0x0000 of QEMU 10, catalogue says None",
    }


def test_wrong_effects_sizes_and_flags_are_reported() -> None:
    wrong = {
        mb.SET_LSA: _replace(mb.SET_LSA, effects=0),
        mb.GET_LOG: _replace(mb.GET_LOG, kernel_sizes=(0x18, 0x40)),
        mb.CLEAR_LOG: _replace(mb.CLEAR_LOG, destructive=False),
    }
    cat = [wrong.get(c, c) for c in mb.CATALOGUE]
    got = disagreements(cat)
    assert "0x4103: CEL effect 0x0006 of QEMU 10, catalogue says 0" in got
    assert "get-log: kernel sizes differ from Linux 6.12's (24, 4294967295)" in got
    assert "clear-log: CEL effect 0x0010 changes the device: destructive" in got
    assert any(g.startswith("get-log: simulated kernel table entry") for g in got)


def test_raw_deny_list_and_bridge_claims_are_the_records() -> None:
    assert DISABLED_RAW_OPCODES == LINUX_DISABLED_RAW
    assert BRIDGE_EXCLUSIVE == LINUX_BRIDGE_EXCLUSIVE
    cat = [_replace(c, raw_disabled=False) if c is mb.SCAN_MEDIA else c for c in mb.CATALOGUE]
    got = disagreements(cat)
    assert len(got) == 2
    assert got[0].startswith("simulated kernel's RAW deny list [0x0202, 0x4101, 0x4103, ")
    assert "0x4304" in got[0].split("catalogue")[0]
    assert "0x4304" not in got[0].split("catalogue")[1]
    assert got[1].startswith("catalogue's RAW deny list [0x0202, ")
    assert disagreements(disabled_raw=DISABLED_RAW_OPCODES - {0x4103}) == [
        "simulated kernel's RAW deny list [0x0202, 0x4101, 0x4204, 0x4300, 0x4301, 0x4302, "
        "0x4304, 0x4305], catalogue [0x0202, 0x4101, 0x4103, 0x4204, 0x4300, 0x4301, "
        "0x4302, 0x4304, 0x4305]"
    ]
    assert disagreements(bridge_exclusive=set()) == [
        "simulated kernel's nvdimm bridge's exclusive ids [], catalogue [10, 14]"
    ]
    cat = [_replace(c, bridge_exclusive=False) if c is mb.SET_LSA else c for c in mb.CATALOGUE]
    assert disagreements(cat) == [
        "simulated kernel's nvdimm bridge's exclusive ids [10, 14], catalogue [14]",
        "catalogue's nvdimm bridge's exclusive ids [14], Linux 6.12 [10, 14]",
    ]


def test_the_device_reports_the_catalogue_effects_in_its_cel() -> None:
    from cxlctl.mailbox.logs import decode_cel

    dev = make_devices(["pmem"], profile="qemu")[0].device
    cel = decode_cel(dev.cel_bytes())
    assert [(e.opcode, e.effect) for e in cel.entries] == [
        (op, mb.BY_OPCODE[op].effects) for op in QEMU_CEL
    ]
    assert {e.opcode for e in cel.entries} == set(reference_cel())
    assert len(CEL_EFFECTS) == 12


def test_completion_candidates_are_the_catalogue_names_and_aliases() -> None:
    ctx = click.Context(main)
    param = click.Argument(["command"])
    every = {c.value for c in complete.catalogue_commands(ctx, param, "")}
    assert every == {c.name for c in mb.CATALOGUE} | {a for c in mb.CATALOGUE for a in c.aliases}
    kernel = {c.value for c in complete.kernel_commands(ctx, param, "")}
    assert kernel == {
        n for c in mb.CATALOGUE if c.kernel_id is not None for n in (c.name, *c.aliases)
    }
    opcodes = {c.value for c in complete.opcodes(ctx, param, "")}
    assert opcodes == {f"{c.opcode:#06x}" for c in mb.CATALOGUE}


def test_help_lists_name_catalogue_commands_and_logs() -> None:
    for verb in ("get-log", "log-caps"):
        m = re.search(
            r"(?:one of|UUID or) ([a-z-]+(?:, [a-z-]+)+)\.", " ".join(_help(verb).split())
        )
        assert m, verb
        assert m.group(1).split(", ") == list(mb.LOG_ALIASES), verb
    for verb in ("send", "decode"):
        m = re.search(r"\(((?:[a-z-]+, )+)\.\.\.\)", " ".join(_help(verb).split()))
        assert m, verb
        for name in m.group(1).rstrip(", ").split(", "):
            assert mb.lookup(name), (verb, name)


def test_query_names_are_the_catalogue_names() -> None:
    import json

    from click.testing import CliRunner

    r = CliRunner().invoke(main, ["--sim", "query", "mem0", "--json"], catch_exceptions=False)
    rows = json.loads(r.stdout)[0]["commands"]
    for row in rows:
        c = mb.BY_KERNEL_ID.get(row["id"])
        assert row["name"] == (c.name if c else None)
        assert row["destructive"] == (c.destructive if c else None)
    assert {row["name"] for row in rows if row["name"]} == {
        c.name for c in mb.CATALOGUE if c.kernel_id is not None
    }
