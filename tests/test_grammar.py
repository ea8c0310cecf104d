"""The command-line grammar (docs/cli-grammar.md), asserted for every command in the tree.

The rules are data: LETTERS says what each option letter means, EXCEPTIONS lists the
few places a verb keeps cxl-cli's letter for something else, NON_MEMDEV_VERBS the
verbs that do not act on memdevs, and EXTRA_ARGS the positionals a verb needs after
its MEMDEVs so this test can run it.  A new command passes by using the building
blocks in cxlctl/cli/options.py; a new letter or exception is added here, with the
reason, in the same commit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click
import pytest
from click.testing import Result

from cxlctl import backends
from cxlctl.backends import SimBackend
from cxlctl.cli import COMMANDS, main
from cxlctl.cli.options import BYTE_FORMATS, FORMATS, Duration, MemdevArgument, Size
from cxlctl.errors import DeviceNotFound, UsageError

Cli = Callable[..., Result]

#: short option -> the long options it may stand for (one meaning per letter).
LETTERS: dict[str, set[str]] = {
    "-h": {"--help"},
    "-V": {"--version"},
    "-o": {"--output"},
    "-u": {"--human"},
    "-S": {"--serial"},
    "-s": {"--size"},
    "-O": {"--offset"},
    "-i": {"--input"},
    "-x": {"--hex"},
    "-f": {"--force"},
    "-y": {"--yes"},
    "-l": {"--log"},
    "-t": {"--timeout", "--type"},
    "-m": {"--memdev"},
    "-v": {"--verbose"},
    "-a": {"--address", "--align"},
    "-w": {"--wait"},
    "-c": {"--cancel"},
    "-d": {"--decoder"},
    "-F": {"--firmware-file"},
}

#: (verb, short option) -> (its long option there, why it differs from LETTERS).
EXCEPTIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("read-labels", "-o"): ("--output", "cxl-cli read-labels: -o is the output FILE"),
    # cxl list's letters
    ("list", "-S"): ("--single", "cxl-cli list"),
    ("list", "-s"): ("--serial", "cxl-cli list: a serial filter taking serials"),
    ("list", "-i"): ("--idle", "cxl-cli list"),
    ("list", "-M"): ("--memdevs", "cxl-cli list"),
    ("list", "-H"): ("--health", "cxl-cli list"),
    ("list", "-I"): ("--partition", "cxl-cli list"),
    ("list", "-F"): ("--firmware", "cxl-cli list"),
    ("list", "-A"): ("--alert-config", "cxl-cli list"),
    ("list", "-L"): ("--media-errors", "cxl-cli list"),
    ("list", "-B"): ("--buses", "cxl-cli list"),
    ("list", "-P"): ("--ports", "cxl-cli list"),
    ("list", "-E"): ("--endpoints", "cxl-cli list"),
    ("list", "-D"): ("--decoders", "cxl-cli list"),
    ("list", "-T"): ("--targets", "cxl-cli list"),
    ("list", "-R"): ("--regions", "cxl-cli list"),
    ("list", "-X"): ("--dax", "cxl-cli list"),
    ("list", "-b"): ("--bus", "cxl-cli list"),
    ("list", "-p"): ("--port", "cxl-cli list"),
    ("list", "-e"): ("--endpoint", "cxl-cli list"),
    ("list", "-r"): ("--region", "cxl-cli list"),
    # cxl set-alert-config's thresholds
    ("set-alert-config", "-L"): ("--life-used-threshold", "cxl-cli set-alert-config"),
    ("set-alert-config", "-O"): ("--over-temperature-threshold", "cxl-cli set-alert-config"),
    ("set-alert-config", "-U"): ("--under-temperature-threshold", "cxl-cli set-alert-config"),
    ("set-alert-config", "-V"): ("--volatile-mem-err-threshold", "cxl-cli set-alert-config"),
    ("set-alert-config", "-P"): ("--pmem-err-threshold", "cxl-cli set-alert-config"),
    # cxl-cli's topology and device-change verbs
    ("create-region", "-m"): ("--memdevs", "cxl-cli create-region"),
    ("create-region", "-w"): ("--ways", "cxl-cli create-region"),
    ("create-region", "-g"): ("--granularity", "cxl-cli create-region"),
    ("create-region", "-U"): ("--uuid", "cxl-cli create-region"),
    ("create-region", "-Q"): ("--enforce-qos", "cxl-cli create-region"),
    ("create-region", "-b"): ("--bus", "cxl-cli create-region"),
    ("enable-region", "-b"): ("--bus", "cxl-cli enable-region"),
    ("disable-region", "-b"): ("--bus", "cxl-cli disable-region"),
    ("destroy-region", "-b"): ("--bus", "cxl-cli destroy-region"),
    ("enable-port", "-e"): ("--endpoint", "cxl-cli enable-port"),
    ("enable-port", "-m"): ("--enable-memdevs", "cxl-cli enable-port"),
    ("disable-port", "-e"): ("--endpoint", "cxl-cli disable-port"),
    ("inject-protocol-error", "-p"): ("--protocol", "cxl-cli 85 inject-protocol-error"),
    ("inject-protocol-error", "-s"): ("--severity", "cxl-cli 85 inject-protocol-error"),
}

#: (verb, option) of hidden options kept so old command lines keep working.
DEPRECATED: set[tuple[str, str]] = {
    ("get-log", "--length"),
    ("events", "--log"),
    ("send", "--input-file"),
    ("raw", "--input-file"),
}

#: verbs that do not take MEMDEVs, and why.
NON_MEMDEV_VERBS: dict[str, str] = {
    "decode": "decodes a saved payload offline",
    "completion": "prints a shell script",
    "batch": "reads requests from stdin; each names its own memdev",
    "monitor": "streams every memdev's events; -m/--memdev filters, as cxl monitor",
    "create-region": "targets are memdevs or endpoint decoders, cxl-cli's positional",
    "enable-region": "takes regions",
    "disable-region": "takes regions",
    "destroy-region": "takes regions",
    "enable-port": "takes ports",
    "disable-port": "takes ports",
    "disable-bus": "takes buses",
    "inject-protocol-error": "takes dports (PCI devices), cxl-cli 85's positional",
}

#: verbs that take exactly one MEMDEV, and why.
ONE_MEMDEV_VERBS: dict[str, str] = {
    "send": "a pass-through: one struct cxl_send_command for one device",
    "raw": "a pass-through: one struct cxl_send_command for one device",
}

#: a verb whose name starts like this changes a device: MEMDEV... is required.
CHANGE_PREFIXES = (
    "write-",
    "zero-",
    "disable-",
    "enable-",
    "set-",
    "update-",
    "inject-",
    "clear-",
    "reserve-",
    "free-",
    "sanitize",
    "secure-erase",
    "activate-",
)

#: positionals a verb needs after its MEMDEVs, so the selection test can run it.
EXTRA_ARGS: dict[str, list[str]] = {
    "get-log": ["cel"],
    "log-caps": ["cel"],
    "send": ["identify"],
    "raw": ["0x4000"],
    "scan-media-caps": ["-s", "4096"],
    "set-alert-config": ["-L", "80", "--life-used-alert", "on"],
    "reserve-dpa": ["-t", "pmem"],
    "clear-log": ["vendor-debug"],
    "set-shutdown-state": ["dirty"],
    "set-event-interrupt-policy": ["--info", "none"],
}

#: metavars that mean "a number": such an option must use options.Size/Duration.
NUMERIC_METAVARS = {"SIZE", "N", "BYTES", "OFFSET", "DPA", "ADDRESS", "MS", "COUNT", "LENGTH"}
#: long names of options that take a FILE.
FILE_OPTIONS = {"--input", "--output-file", "--log", "--firmware-file"}


def _commands() -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(main)
    for name in sorted(set(COMMANDS) | set(main.list_commands(ctx))):
        cmd = main.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):  # pragma: no cover - no nested groups yet
            for sub in cmd.list_commands(ctx):
                subcmd = cmd.get_command(ctx, sub)
                assert subcmd is not None
                yield f"{name} {sub}", subcmd
        yield name, cmd


ALL = list(_commands())
NAMES = [n for n, _ in ALL]


def _options(cmd: click.Command) -> list[click.Option]:
    return [p for p in cmd.params if isinstance(p, click.Option)]


def _opt(cmd: click.Command, name: str) -> click.Option | None:
    return next((p for p in _options(cmd) if name in p.opts or name in p.secondary_opts), None)


def _long(p: click.Option) -> str | None:
    return next((o for o in p.opts if o.startswith("--")), None)


@pytest.mark.parametrize(("name", "cmd"), ALL, ids=NAMES)
def test_option_letters_mean_one_thing(name: str, cmd: click.Command) -> None:
    for p in _options(cmd):
        if p.hidden:
            assert (name, _long(p)) in DEPRECATED, f"{name}: hidden option {p.opts} not listed"
            continue
        for short in (o for o in p.opts if re.fullmatch(r"-[A-Za-z]", o)):
            long = _long(p)
            if (name, short) in EXCEPTIONS:
                want, _why = EXCEPTIONS[(name, short)]
                assert long == want, f"{name}: {short} is {long}, EXCEPTIONS says {want}"
                continue
            assert short in LETTERS, f"{name}: {short} ({long}) is not in LETTERS; add it"
            assert long in LETTERS[short], (
                f"{name}: {short} means {long} here but {sorted(LETTERS[short])} elsewhere"
            )


@pytest.mark.parametrize(("name", "cmd"), ALL, ids=NAMES)
def test_output_option(name: str, cmd: click.Command) -> None:
    out = _opt(cmd, "--output")
    js = _opt(cmd, "--json")
    if name == "read-labels":  # cxl-cli's -o FILE; the format is --format
        fmt = _opt(cmd, "--format")
        assert fmt is not None
        assert js is not None
        assert _opt(cmd, "-u") is not None
        assert "cxl-cli" in (out.help or "" if out else "")
        return
    if out is None:
        assert js is None, f"{name}: --json without -o"
        return
    assert "-o" in out.opts, f"{name}: --output without -o"
    assert isinstance(out.type, click.Choice), f"{name}: -o is not a format choice"
    choices = tuple(out.type.choices)
    assert choices[: len(FORMATS)] == FORMATS, f"{name}: -o {choices}"
    assert set(choices[len(FORMATS) :]) <= set(BYTE_FORMATS), f"{name}: -o {choices}"
    assert js is not None, f"{name}: -o without --json"
    assert js.is_flag
    assert "same as -o json" in (js.help or "").lower()
    human = _opt(cmd, "-u")
    assert human is not None, f"{name}: -o without -u/--human"
    assert "--human" in human.opts


@pytest.mark.parametrize(("name", "cmd"), ALL, ids=NAMES)
def test_numbers_use_the_one_size_type(name: str, cmd: click.Command) -> None:
    for p in _options(cmd):
        if p.is_flag or p.count or isinstance(p.type, click.Choice):
            continue
        t = p.type
        assert not isinstance(t, (click.types.IntParamType, click.types.FloatParamType)), (
            f"{name}: {p.opts} uses {t!r}; numbers are options.Size (or Duration)"
        )
        metavar = (p.metavar or "").upper()
        if metavar in NUMERIC_METAVARS or any(o in ("--size", "--offset") for o in p.opts):
            assert isinstance(t, (Size, Duration)), f"{name}: {p.opts} is a number as {t!r}"
        if "--timeout" in p.opts:
            assert isinstance(t, Duration), f"{name}: --timeout is in milliseconds (Duration)"


@pytest.mark.parametrize(("name", "cmd"), ALL, ids=NAMES)
def test_file_options(name: str, cmd: click.Command) -> None:
    for p in _options(cmd):
        if p.hidden or (p.metavar or "").split("|")[0] != "FILE":
            continue
        long = _long(p)
        if (name, "-o") in EXCEPTIONS and long == "--output":
            continue
        assert long in FILE_OPTIONS, f"{name}: file option {long}; use one of {FILE_OPTIONS}"
    force = _opt(cmd, "-f")
    if force is not None and not force.hidden:
        assert force.is_flag, f"{name}: -f takes a value; -f is --force everywhere"
    inp = _opt(cmd, "-i")
    if inp is not None and (name, "-i") not in EXCEPTIONS:
        assert inp.metavar == "FILE", f"{name}: -i is a FILE everywhere"


@pytest.mark.parametrize(("name", "cmd"), ALL, ids=NAMES)
def test_memdevs_come_first(name: str, cmd: click.Command) -> None:
    args = [p for p in cmd.params if isinstance(p, click.Argument)]
    mem = [p for p in args if isinstance(p, MemdevArgument)]
    if name in NON_MEMDEV_VERBS:
        assert not mem, f"{name} is listed in NON_MEMDEV_VERBS but takes MEMDEVs"
        return
    assert mem, f"{name}: per-memdev verbs take options.memdevs_argument/memdevs_required"
    assert args[0] is mem[0], f"{name}: MEMDEV must be the first positional"
    (arg,) = mem
    if name in ONE_MEMDEV_VERBS:
        assert arg.nargs == 1
    else:
        assert arg.nargs == -1, f"{name}: takes MEMDEV... (several), or list it in ONE_MEMDEV"
    changes = name.startswith(CHANGE_PREFIXES)
    assert arg.change == changes or name in ONE_MEMDEV_VERBS, (
        f"{name}: {'needs' if changes else 'must not need'} an explicit MEMDEV"
    )
    if name != "list":  # list has cxl-cli's -s/--serial filter instead
        serial = _opt(cmd, "-S")
        assert serial is not None, f"{name}: no -S/--serial"
        assert serial.is_flag


# --- every per-memdev verb selects through the library ---------------------------------


class _Stop(DeviceNotFound):
    pass


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    seen: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def select(self: Any, specs: Sequence[str] = (), **kw: Any) -> list[str]:
        seen.append((tuple(specs), kw))
        if kw.get("explicit") and not backends.split_specs(specs):
            raise UsageError("name the memdevs to change")
        raise _Stop("stop here")

    monkeypatch.setattr(backends.Backend, "select", select)
    return seen


MEMDEV_VERBS = [
    (n, c) for n, c in ALL if n not in NON_MEMDEV_VERBS and not n.startswith("completion")
]


@pytest.mark.parametrize(("name", "cmd"), MEMDEV_VERBS, ids=[n for n, _ in MEMDEV_VERBS])
def test_selection_goes_through_the_library(
    cli: Cli, calls: list[tuple[tuple[str, ...], dict[str, Any]]], name: str, cmd: click.Command
) -> None:
    extra = EXTRA_ARGS.get(name, [])
    spec = "0,/dev/cxl/mem1"
    r = cli(name, spec, *extra)
    assert r.exit_code == 6, (name, r.exit_code, r.stderr)
    assert calls[-1][0] in ((spec,), ("0", "/dev/cxl/mem1")), calls
    if name != "list":
        r = cli(name, "-S", "0x1234", *extra)
        assert r.exit_code == 6, (name, r.stderr)
        assert calls[-1][0] == ("0x1234",)
        assert calls[-1][1]["serial"] is True
    if name not in ONE_MEMDEV_VERBS:
        r = cli(name, *extra)
        want = 2 if name.startswith(CHANGE_PREFIXES) else 6
        assert r.exit_code == want, (name, r.exit_code, r.stderr)


# --- the selection forms (library) ----------------------------------------------------


@pytest.fixture
def sim() -> SimBackend:
    return SimBackend()


@pytest.mark.parametrize(
    ("specs", "serial", "want"),
    [
        ((), False, ["mem0", "mem1", "mem2"]),
        (("all",), False, ["mem0", "mem1", "mem2"]),
        (("mem1",), False, ["mem1"]),
        (("/dev/cxl/mem2",), False, ["mem2"]),
        (("2",), False, ["mem2"]),
        (("mem2,0", "mem0"), False, ["mem2", "mem0"]),
        (("0000:0e:00.0",), False, ["mem1"]),
        (("0e:00.0",), False, ["mem1"]),
        (("0x1235",), True, ["mem1"]),
        (("4662,0x1234",), True, ["mem2", "mem0"]),
        (("mem1", "all"), False, ["mem0", "mem1", "mem2"]),
    ],
)
def test_select_forms(
    sim: SimBackend, specs: tuple[str, ...], serial: bool, want: list[str]
) -> None:
    assert sim.select(specs, serial=serial) == want


@pytest.mark.parametrize("spec", ["mem٣", "٣", "memx", "mem-1", "0x1234", "mem 0", ""])
def test_select_refuses(sim: SimBackend, spec: str) -> None:
    with pytest.raises((UsageError, DeviceNotFound)):
        sim.select([spec] if spec else ["mem0,,", "x"])


def test_select_explicit_needs_a_memdev(sim: SimBackend) -> None:
    with pytest.raises(UsageError, match="name the memdevs to change"):
        sim.select((), explicit=True)
    assert sim.select(("all",), explicit=True) == ["mem0", "mem1", "mem2"]


def test_select_unknown_is_not_found(sim: SimBackend) -> None:
    with pytest.raises(DeviceNotFound, match="mem7: no such memdev") as e:
        sim.select(["mem7"])
    assert e.value.hint == "available: mem0, mem1, mem2"
    with pytest.raises(DeviceNotFound):
        sim.select(["0x9999"], serial=True)
    with pytest.raises(UsageError) as u:
        sim.select(["0x1234"])
    assert u.value.hint == "to select by serial, add -S: `-S 0x1234`"
