"""A cxl-cli script corpus: `cxl list` invocations of cxl-cli 81's man page
(ndctl v81 Documentation/cxl/cxl-list.txt), run as `cxlctl --sim list ... --cxl-compat`
on the reference platform (one persistent and one volatile device, as
/work/shared/reference/topology.md), must print the objects cxl-cli 81 printed there:
the same keys, the same value types, the same top-level shape.

The expected keys and types come from cxl-cli 81's own output recorded in
``tests/data/cxl-cli-81-list.json`` (every ``cxl list`` JSON of the reference: topology.md
§4-§10 and the two linux-6.12 captures), per object kind (memdev, bus, port,
endpoint, decoder, region, dax region, dport, target, mapping) and per mode (raw
integers, or ``-u``).  Where the reference has no output for an invocation, the shape
is derived from ndctl 81's source and said so in ``DERIVED`` below.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

Cli = Callable[..., Result]
REF = Path(__file__).parent / "data" / "cxl-cli-81-list.json"
CORPUS_FILE = Path(__file__).parent / "data" / "cxl-list-corpus.json"
PLATFORM = {"CXLCTL_SIM_DEVICES": "pmem,ram"}  # topology.md's "p,v" platform

#: (the man page's invocation, our arguments): tests/data/cxl-list-corpus.json
CORPUS: list[tuple[str, str]] = [
    (c["manpage"], c["args"]) for c in json.loads(CORPUS_FILE.read_text())["corpus"]
]

#: Shapes the reference does not show, from ndctl 81's source:
#: - health (`-H`): util_cxl_memdev_health_to_json() (cxl/json.c) is only called when
#:   the device answers Get Health Info; QEMU 10 has none, so the reference shows no
#:   `health`. Its keys: the 13 status booleans, 4 `ext_*` strings, and the integers
#:   `life_used_percent`, `temperature`, `dirty_shutdowns`, `volatile_errors`,
#:   `pmem_errors` (the man page's example lists exactly these).
#: - alert config (`-A`): util_cxl_memdev_alert_config_to_json(): 10 `*_valid` /
#:   `*_writable` booleans and 8 integer thresholds.
DERIVED: dict[str, dict[str, set[str]]] = {
    "health": {
        **{
            k: {"bool"}
            for k in (
                "maintenance_needed", "performance_degraded", "hw_replacement_needed",
                "media_normal", "media_not_ready", "media_persistence_lost",
                "media_data_lost", "media_powerloss_persistence_loss",
                "media_shutdown_persistence_loss", "media_persistence_loss_imminent",
                "media_powerloss_data_loss", "media_shutdown_data_loss",
                "media_data_loss_imminent",
            )
        },
        **{k: {"str"} for k in ("ext_life_used", "ext_temperature",
                                "ext_corrected_volatile", "ext_corrected_persistent")},
        **{k: {"int"} for k in ("life_used_percent", "temperature", "dirty_shutdowns",
                                "volatile_errors", "pmem_errors")},
    },
    "alert_config": {
        **{
            f"{a}_prog_warn_threshold_{s}": {"bool"}
            for s in ("valid", "writable")
            for a in ("life_used", "dev_over_temperature", "dev_under_temperature",
                      "corrected_volatile_mem_err", "corrected_pmem_err")
        },
        **{
            k: {"int"}
            for k in (
                "life_used_crit_alert_threshold", "life_used_prog_warn_threshold",
                "dev_over_temperature_crit_alert_threshold",
                "dev_under_temperature_crit_alert_threshold",
                "dev_over_temperature_prog_warn_threshold",
                "dev_under_temperature_prog_warn_threshold",
                "corrected_volatile_mem_err_prog_warn_threshold",
                "corrected_pmem_err_prog_warn_threshold",
            )
        },
    },
    # cxl/json.c util_cxl_memdev_to_json(): "health" (-H) and "alert_config" (-A) objects
    "memdev": {"health": {"dict"}, "alert_config": {"dict"}},
    # cxl/filter.c walk_child_ports() / cxl_filter_walk(): with -M and -B (or -P) the
    # memdevs nest under their bus or port as "memdevs:<name>"
    # (cond_add_put_array_suffix(jbus, "memdevs", devname, jchilddevs))
    "bus": {"memdevs:*": {"list"}},
    "port": {"memdevs:*": {"list"}},
}  # fmt: skip

#: the key that names an object's kind (cxl/json.c's first key)
KIND_KEYS = ("memdev", "bus", "endpoint", "port", "decoder", "region", "daxregion",
             "dport", "target", "partition_info", "firmware")  # fmt: skip


def _type(v: Any) -> str:
    return {bool: "bool", int: "int", str: "str", list: "list", dict: "dict"}.get(type(v), "null")


def _kind(obj: dict[str, Any], parent: str) -> str:
    for k in KIND_KEYS:
        if k in obj and not isinstance(obj[k], dict):
            return k
    if "position" in obj:
        return "mapping"
    if "chardev" in obj:
        return "dax device"
    return parent


def _key(k: str) -> str:
    """`ports:root0` -> `ports:*`: nested arrays are named after their parent."""
    return k.split(":", 1)[0] + ":*" if ":" in k else k


Shapes = dict[str, dict[str, set[str]]]


def _shapes(doc: Any, out: Shapes, parent: str = "top") -> None:
    if isinstance(doc, list):
        for v in doc:
            _shapes(v, out, parent)
        return
    if not isinstance(doc, dict):
        return
    kind = _kind(doc, parent)
    keys = out.setdefault(kind, {})
    for k, v in doc.items():
        keys.setdefault(_key(k), set()).add(_type(v))
        if isinstance(v, dict):
            _shapes(v, out, k)
        elif isinstance(v, list):
            _shapes(v, out, _key(k))


def _reference() -> dict[str, Shapes]:
    """mode ("raw" or "human") -> kind -> key -> types, from cxl-cli 81's outputs."""
    ref: dict[str, Shapes] = {"raw": {}, "human": {}}
    for entry in json.loads(REF.read_text())["outputs"]:
        _shapes(entry["output"], ref["human" if entry["human"] else "raw"])
    for mode in ref.values():
        for kind, keys in DERIVED.items():
            for k, types in keys.items():
                mode.setdefault(kind, {}).setdefault(k, set()).update(types)
    return ref


REFERENCE = _reference()


def _human(args: list[str]) -> bool:
    """-u, also bundled (-BMu)."""
    return "--human" in args or any(
        a.startswith("-") and not a.startswith("--") and "u" in a[1:] for a in args
    )


@pytest.mark.parametrize(("manpage", "ours"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_invocation_has_cxl_clis_keys_and_types(cli: Cli, manpage: str, ours: str) -> None:
    args = shlex.split(ours)
    r = cli("list", *args, "--cxl-compat", env=PLATFORM)
    assert r.exit_code == 0, (manpage, r.stderr)
    human = _human(args)
    ref = REFERENCE["human" if human else "raw"]
    if not r.stdout:  # cxl-cli prints nothing for no object under -u
        assert human, manpage
        return
    doc = json.loads(r.stdout)
    # the top level: util_display_json_array(): a bare object only for one object under -u
    if isinstance(doc, dict):
        assert human, f"{manpage}: a bare object without -u"
    elif human:
        assert len(doc) != 1, f"{manpage}: one object under -u must be unwrapped"
    got: Shapes = {}
    _shapes(doc, got)
    got.pop("top", None)  # group objects ({"memdevs": [...]}) are checked by their members
    assert got, f"{manpage}: no objects"
    for kind, keys in got.items():
        assert kind in ref, f"{manpage}: cxl-cli 81 prints no {kind} objects"
        for k, types in keys.items():
            assert k in ref[kind], f"{manpage}: {kind}.{k} is not a cxl-cli 81 key"
            assert types <= ref[kind][k], (
                f"{manpage}: {kind}.{k} is {types}, cxl-cli 81 prints {ref[kind][k]}"
            )


def test_bus_filter_takes_the_provider_as_cxl_cli(cli: Cli) -> None:
    by_provider = cli("list", "-B", "-b", "ACPI.CXL", "--cxl-compat", env=PLATFORM)
    assert [b["bus"] for b in json.loads(by_provider.stdout)] == ["root0"]
    other = cli("list", "-B", "-b", "cxl_test", "--cxl-compat", env=PLATFORM)
    assert json.loads(other.stdout) == []


def test_corpus_is_fifteen_man_page_invocations() -> None:
    assert len(CORPUS) >= 15
    assert all(m.startswith("cxl list") for m, _ in CORPUS)


def test_reference_shapes_are_read() -> None:
    """The reference file gives shapes for every object kind the corpus prints."""
    for mode in ("raw", "human"):
        for kind in ("memdev", "bus", "port", "endpoint", "decoder"):
            assert kind in REFERENCE[mode], (mode, kind)
    assert REFERENCE["human"]["memdev"]["serial"] == {"str"}
    assert REFERENCE["raw"]["memdev"]["serial"] == {"int"}


def test_the_shape_check_can_fail(cli: Cli) -> None:
    """Our own keys (not cxl-cli's) and our default array are caught."""
    r = cli("list", "-m", "mem0", "-u", "--json", env=PLATFORM)
    doc = json.loads(r.stdout)
    assert isinstance(doc, list)
    assert len(doc) == 1  # not unwrapped: the compat check above would fail it
    got: Shapes = {}
    _shapes(doc, got)
    assert "payload_max" in got["memdev"]
    assert "payload_max" not in REFERENCE["human"]["memdev"]
