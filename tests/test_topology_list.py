"""`list` with the topology options against cxl-cli 81's output (reference section 4)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from click.testing import CliRunner
from topology_ref import confirmed, json_after

from cxlctl.cli import main
from cxlctl.listing import Params, cxl_list
from cxlctl.sim import make_devices
from cxlctl.sim.driver.sysfs import SimSysfs
from cxlctl.topology import read_topology

ALL = ["-B", "-P", "-E", "-D", "-T", "-R", "-X", "-M", "-u"]


pytestmark = pytest.mark.usefixtures("qemu_pv")  # the reference's p,v boot


def run(*args: str) -> Any:
    r = CliRunner().invoke(main, ["--sim", *confirmed(args)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def listed(*args: str) -> Any:
    out = json.loads(run("list", *args, "--json").stdout)
    assert isinstance(out, list)
    return out[0] if len(out) == 1 else out


def shape(v: Any) -> Any:
    """Keys, nesting and value types (what cxl-cli scripts depend on)."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(x) for x in v]
    return type(v).__name__


def two_regions() -> None:
    run("create-region", "-m", "-t", "ram", "-d", "decoder0.0", "-w", "1", "mem1")
    run("create-region", "-m", "-t", "pmem", "-d", "decoder0.0", "-w", "1", "mem0")


def test_baseline_equals_section_4_1() -> None:
    assert listed(*ALL, "-i") == json_after("### 4.1 Baseline")


@pytest.mark.parametrize(
    ("args", "marker", "nth"),
    [
        (["-B", "-u"], "`cxl list -B -u` →", 0),
        (["-P", "-u"], "`cxl list -P -u` →", 0),
        (["-E", "-u"], "`cxl list -E -u` →", 0),
        (["-D", "-u"], "`cxl list -D -u` →", 0),
        (["-D", "-d", "root", "-u"], "`cxl list -D -d root -u` →", 0),
    ],
)
def test_single_classes_of_section_4_1(args: list[str], marker: str, nth: int) -> None:
    assert listed(*args) == json_after(marker, nth)


def test_memdevs_alone_keep_the_memdev_listing() -> None:
    # `list -M` without topology options is the memdev listing (with cxlctl's keys)
    (mem0, _mem1) = listed("-M")
    assert mem0["backend"] == "sim"


def test_idle_decoders_with_dash_i() -> None:
    assert listed("-D", "-d", "switch", "-u") == []
    got = listed("-D", "-d", "endpoint", "-u", "-i")
    assert [d["decoder"] for d in got] == [f"decoder{p}.{i}" for p in (2, 3) for i in range(4)]
    assert got[0] == {"decoder": "decoder2.0", "interleave_ways": 1, "state": "disabled"}


def test_after_two_regions_equals_section_4_3() -> None:
    two_regions()
    assert listed(*ALL) == json_after("### 4.3 After the two regions")
    assert listed("-R", "-u") == json_after("Single classes after the regions:")
    assert listed("-R", "-T", "-u") == json_after("`cxl list -R -T -u` →")
    assert listed("-R", "-X", "-u") == json_after("`cxl list -R -X -u` →")
    assert listed("-D", "-u") == json_after("`cxl list -D -u` →", 1)
    assert listed("-E", "-u") == json_after("`cxl list -E -u` →", 1)
    assert listed("-P", "-u") == json_after("`cxl list -P -u` →", 1)


def test_vvv_equals_section_4_2_on_the_qemu_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXLCTL_SIM_PROFILE", "qemu")  # no health/alert commands, as QEMU 10
    two_regions()
    assert listed("-vvv") == json_after("### 4.2 `cxl list -vvv`")[0]


def test_disabled_region_with_idle() -> None:
    two_regions()
    run("disable-region", "region0")
    assert listed("-R", "-i", "-u") == json_after("`cxl list -R -i -u` with region0")
    assert [r["region"] for r in [listed("-R", "-u")]] == ["region1"]


def test_disabled_port_lists_anon_memdevs() -> None:
    run("disable-port", "port1")
    got = listed("-B", "-P", "-E", "-M", "-i", "-u")
    assert got == json_after("`cxl list -B -P -E -M -i -u`")


def test_two_way_interleave_equals_section_6() -> None:
    os.environ["CXLCTL_SIM_DEVICES"] = "pmem,pmem"
    run("create-region", "-m", "-t", "pmem", "-d", "decoder0.0", "-w", "2", "mem0", "mem1")
    got = listed(*ALL)
    exp = json_after("`cxl list -B -P -E -D -T -R -X -M -u`:")
    # the reference boot probed mem1 first (endpoint2): compare per serial, not name
    assert shape(got) == shape(exp)
    region = got["decoders:root0"][0]["regions:decoder0.0"][0]
    want = exp["decoders:root0"][0]["regions:decoder0.0"][0]
    assert {k: v for k, v in region.items() if k != "mappings"} == {
        k: v for k, v in want.items() if k != "mappings"
    }
    assert [(m["position"], m["memdev"]) for m in region["mappings"]] == [(1, "mem1"), (0, "mem0")]
    hb = got["ports:root0"][0]["decoders:port1"][0]
    assert hb["interleave_ways"] == 2
    assert hb["targets"] == exp["ports:root0"][0]["decoders:port1"][0]["targets"]


def test_filters() -> None:
    two_regions()
    assert listed("-R", "-r", "1")["region"] == "region1"
    got = listed("-E", "-m", "mem1")
    assert got["endpoint"] == "endpoint3"
    assert listed("-E", "-s", "0x1234")["host"] == "mem0"
    got = listed("-D", "-d", "endpoint", "-m", "mem0")
    assert got["decoder"] == "decoder2.0"
    assert listed("-P", "-p", "port1", "-S")["port"] == "port1"


def test_single_needs_a_port_filter() -> None:
    r = CliRunner().invoke(main, ["--sim", "list", "-S", "-B"], catch_exceptions=False)
    assert r.exit_code == 2
    assert "-S/--single expects a port filter" in r.stderr


def test_tree_and_tables_for_people() -> None:
    two_regions()
    tree = run("list", "-v").stdout
    assert "root0 (ACPI.CXL)" in tree
    assert "endpoint3 via 0000:0c:01.0: mem1 serial 0x1235" in tree
    assert "region0 ram 0x490000000+256.00 MiB x1 [commit, enabled] 0=mem1" in tree
    table = run("list", "-R").stdout
    assert "region1" in table
    assert "pmem" in table
    assert "decoder3.0" in run("list", "-D").stdout


def test_library_walk_matches_on_a_bare_seam() -> None:
    devs = make_devices(("pmem", "ram"))
    fs = SimSysfs({d.name: d for d in devs})
    topo = read_topology(fs)
    assert [m.serial for m in topo.memdevs] == [0x1234, 0x1235]
    m = topo.memdev_by_serial(0x1235)
    assert m is not None
    ep = topo.endpoint_of(m)
    assert ep is not None
    assert (ep.name, ep.parent_dport) == ("endpoint3", "0000:0c:01.0")
    out = cxl_list(topo, Params(buses=True, targets=True))
    assert out == [
        {
            "bus": "root0",
            "provider": "ACPI.CXL",
            "nr_dports": 1,
            "dports": [{"dport": "pci0000:0c", "alias": "ACPI0016:00", "id": 12}],
        }
    ]


# --- region and decoder tables for people: goldens at 80 and 120 columns ---------------

TABLE_ENV = {
    "CXLCTL_SIM_DEVICES": "pmem,pmem,ram",
    "CXLCTL_SIM_SERIALS": "0x1122334455667788,0xfedcba9876543210,0x8000000000000001",
    "NO_COLOR": "1",
}
PMEM_UUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
TOPO_TABLES = {
    "regions": ["list", "-R"],
    "regions-idle": ["list", "-R", "-i"],
    "decoders": ["list", "-D"],
    "decoders-idle": ["list", "-D", "-i"],
}


def _two_regions(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in TABLE_ENV.items():
        monkeypatch.setenv(k, v)
    run("create-region", "-t", "pmem", "-w", "2", "-U", PMEM_UUID, "mem0", "mem1")
    run("create-region", "-t", "ram", "--no-enable", "mem2")


@pytest.mark.parametrize("columns", ["80", "120"])
@pytest.mark.parametrize("name", sorted(TOPO_TABLES))
def test_region_and_decoder_tables_keep_names_whole(
    monkeypatch: pytest.MonkeyPatch, name: str, columns: str
) -> None:
    from goldens import golden

    _two_regions(monkeypatch)
    monkeypatch.setenv("COLUMNS", columns)
    out = run(*TOPO_TABLES[name]).stdout
    golden(f"tables/{name}-{columns}.txt", out)
    assert "…" not in out
    assert all(len(line) <= int(columns) for line in out.splitlines()), out
    names = ["region0", "mem0", "mem1"] + (["region1", "mem2"] if "idle" in name else [])
    if name.startswith("decoders"):
        names += ["decoder0.0", "decoder1.0", "decoder2.0", "decoder3.0"]
    else:
        names.append(PMEM_UUID[:8])  # abbreviated in the table, whole with -o wide
    for n in names:
        assert n in out, (n, out)


def test_region_table_wide_has_the_whole_uuid_and_every_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _two_regions(monkeypatch)
    monkeypatch.setenv("COLUMNS", "80")
    out = run("list", "-R", "-i", "-o", "wide").stdout
    assert PMEM_UUID in out
    assert "0:mem0/decoder2.0 1:mem1/decoder3.0" in out
    assert "-o wide" not in out.splitlines()[0]
    assert PMEM_UUID in run("list", "-R", "-i", "-o", "plain").stdout
