"""Region, DPA, port and bus workflows on the simulator: libcxl's write sequences
(reference sections 5-7) and every misuse of sections 11-12 with its errno and rule."""

from __future__ import annotations

import errno
import json
from typing import Any

import pytest
from click.testing import CliRunner, Result
from topology_ref import confirmed, writes_after

from cxlctl import regions as rg
from cxlctl.cli import main
from cxlctl.mailbox.memdev import Identify, PartitionInfo
from cxlctl.sim import make_devices
from cxlctl.sim.driver import platform as pf
from cxlctl.sim.driver.sysfs import SimSysfs
from cxlctl.topology import read_topology

pytestmark = pytest.mark.usefixtures("qemu_pv")  # the reference's p,v boot


def fs_of(kinds: tuple[str, ...] = ("pmem", "ram"), spec: str = "") -> SimSysfs:
    devs = make_devices(kinds)
    return SimSysfs({d.name: d for d in devs}, pf.parse(spec, len(devs)))


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["--sim", *confirmed(args)], catch_exceptions=False)


def ok(*args: str) -> Result:
    r = cli(*args)
    assert r.exit_code == 0, r.stderr
    return r


def writes(fs: SimSysfs) -> list[tuple[str, bytes, str]]:
    out = []
    for path, data, err in fs.writes:
        if path == "bus/cxl/flush":
            continue
        out.append((path, data, errno.errorcode[err] if err else str(len(data))))
    return out


def libcxl(marker: str) -> list[tuple[str, bytes, str]]:
    """The reference's writes minus libcxl's generic bind loop (it tries cxl_port
    and cxl_mem before cxl_region; we bind cxl_region directly)."""
    return [
        w
        for w in writes_after(marker)
        if not (
            w[0] in ("bus/cxl/drivers/cxl_port/bind", "bus/cxl/drivers/cxl_mem/bind")
            and w[2] == "ENODEV"
        )
    ]


def plan(fs: SimSysfs, **kw: Any) -> rg.Plan:
    return rg.plan_region(read_topology(fs), root_decoder="decoder0.0", **kw)


def test_create_ram_region_writes_section_5_1() -> None:
    fs = fs_of()
    rg.create_region(fs, plan(fs, mode="ram", targets=["mem1"]))
    assert writes(fs) == libcxl("### 5.1 `cxl create-region -m -t ram")


def test_create_pmem_region_writes_section_5_2() -> None:
    fs = fs_of()
    rg.create_region(fs, plan(fs, mode="ram", targets=["mem1"]))
    fs.writes.clear()
    rg.create_region(
        fs, plan(fs, mode="pmem", targets=["mem0"], uuid="9f8b0c55-ca8c-4914-ab56-29dc188435ed")
    )
    assert writes(fs) == libcxl("### 5.2 `cxl create-region -m -t pmem")


def test_two_way_writes_section_6() -> None:
    fs = fs_of(("pmem", "pmem"))
    # the reference boot had mem0 on endpoint3, mem1 on endpoint2: name decoders instead
    rg.create_region(
        fs,
        plan(
            fs,
            mode="pmem",
            targets=["decoder2.0", "decoder3.0"],
            uuid="08b830ad-a6c6-4a9e-8cea-fe1f1acaed0b",
        ),
    )
    exp = [
        (
            p.replace("endpoint3/decoder3.0", "X")
            .replace("endpoint2/decoder2.0", "endpoint3/decoder3.0")
            .replace("X", "endpoint2/decoder2.0"),
            d.replace(b"decoder3.0", b"Y")
            .replace(b"decoder2.0", b"decoder3.0")
            .replace(b"Y", b"decoder2.0"),
            r,
        )
        for p, d, r in libcxl("## 6. Two-way interleave")
    ]
    assert writes(fs) == exp


def test_disable_and_destroy_write_sections_5_3_and_5_5() -> None:
    fs = fs_of()
    rg.create_region(fs, plan(fs, mode="ram", targets=["mem1"]))
    r = read_topology(fs).region("region0")
    assert r is not None
    fs.writes.clear()
    assert rg.destroy_region(fs, r, force=True) == [146, 147]
    exp = [
        (p.replace("endpoint2/decoder2.0", "endpoint3/decoder3.0"), d, res)
        for p, d, res in writes_after("`-f` on an active ram region offlines")
    ]
    assert writes(fs) == exp
    assert read_topology(fs).region("region0") is None


def test_destroy_disabled_region_section_5_5() -> None:
    fs = fs_of()
    rg.create_region(fs, plan(fs, mode="ram", targets=["mem1"]))
    r = read_topology(fs).region("region0")
    assert r is not None
    rg.disable_region(fs, r)
    r = read_topology(fs).region("region0")
    assert r is not None
    assert not r.enabled
    fs.writes.clear()
    rg.destroy_region(fs, r)
    assert writes(fs) == writes_after("A disabled region is destroyed without `-f`")


def test_cli_workflow_ram_and_pmem() -> None:
    r = ok("create-region", "-m", "-t", "ram", "-d", "decoder0.0", "mem1", "--json")
    (region,) = json.loads(r.stdout)
    assert (region["region"], region["decode_state"]) == ("region0", "commit")
    assert (
        "region0: created ram region, 256.00 MiB at 0x490000000, 1 way(s) over mem1; " in r.stderr
    )
    assert "256.00 MiB of system RAM onlined by kmem (memory146-147" in r.stderr
    r = ok("create-region", "-t", "pmem", "mem0")  # -d, -m defaulted
    assert "region1: created pmem region, 256.00 MiB at 0x4a0000000" in r.stderr
    assert "destroyed" not in r.stderr
    r = cli("destroy-region", "region0")
    assert r.exit_code == 7
    assert "region0: active: disable it first, or use --force" in r.stderr
    ok("disable-region", "region0")
    assert "already disabled" in ok("disable-region", "region0").stderr
    ok("enable-region", "region0")
    assert "already enabled" in ok("enable-region", "region0").stderr
    ok("destroy-region", "-f", "all")
    assert json.loads(ok("list", "-R", "-i", "--json").stdout) == []
    # endpoint decoders keep their mode after teardown
    d = json.loads(ok("list", "-D", "-d", "decoder3.0", "-i", "--json").stdout)
    assert d == [
        {"decoder": "decoder3.0", "interleave_ways": 1, "state": "disabled", "mode": "ram"}
    ]


def create(
    *extra: str, t: str = "pmem", d: str = "decoder0.0", targets: tuple[str, ...] = ("mem0",)
) -> list[str]:
    """create-region's arguments: ``-m -t T -d D EXTRA... TARGETS...``."""
    return ["-m", "-t", t, "-d", d, *extra, *targets]


def test_two_way_interleave_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXLCTL_SIM_DEVICES", "pmem,pmem")
    r = cli("create-region", *create("-w", "2", "-s", "256M", targets=("mem0", "mem1")))
    assert r.exit_code == 8
    assert "a multiple of 256 MiB x 2 ways (512 MiB)" in r.stderr
    ok("create-region", *create("-w", "2", "-g", "4096", targets=("mem1", "mem0")))
    (reg,) = json.loads(ok("list", "-R", "-T", "--json").stdout)
    assert reg["interleave_granularity"] == 4096
    assert [(m["position"], m["memdev"]) for m in reg["mappings"]] == [(1, "mem0"), (0, "mem1")]
    ok("destroy-region", "-f", "region0")


def test_multi_host_bridge_interleave_reorders_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXLCTL_SIM_DEVICES", "pmem,pmem,pmem,pmem")
    monkeypatch.setenv("CXLCTL_SIM_TOPOLOGY", "hb=2,2;cfmws=8G:hb=0+1")
    # mem0, mem1 below host bridge 0; mem2, mem3 below host bridge 1
    r = ok("create-region", "-t", "pmem", "mem0", "mem1", "mem2", "mem3", "--json")
    assert (
        "targets reordered to fit the host-bridge interleave: 0=mem0, 1=mem2, 2=mem1, 3=mem3"
        in r.stderr
    )
    (reg,) = json.loads(r.stdout)
    assert (reg["interleave_ways"], reg["size"]) == (4, 4 << 28)
    hbs = json.loads(ok("list", "-D", "-d", "switch", "-T", "--json").stdout)
    assert [
        (d["decoder"], d["interleave_ways"], [t["target"] for t in d["targets"]]) for d in hbs
    ] == [
        ("decoder1.0", 2, ["0000:0c:01.0", "0000:0c:00.0"]),  # libcxl lists them backwards
        ("decoder2.0", 2, ["0000:0f:01.0", "0000:0f:00.0"]),
    ]


UUID = "9f8b0c55-ca8c-4914-ab56-29dc188435ed"
STEP = "a region's size is a multiple of 256 MiB x 1 ways"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (create(d="decoder1.0"), 6, "decoder1.0: not a root decoder"),
        (create(d="decoder2.0"), 6, "decoder2.0: not a root decoder"),
        (create(d="decoder9.9"), 6, "decoder9.9: not a root decoder"),
        (create(t="ram"), 8, "mem0 has no ram capacity"),
        (create(targets=("mem1",)), 8, "mem1 has no pmem capacity"),
        (create("-w", "2"), 8, "interleave ways 2 but 1 target(s) given"),
        (create("-s", "100M"), 8, STEP),
        (create("-s", "128M"), 8, STEP),
        (create("-s", "512M"), 8, "mem0: less than 512 MiB of free pmem capacity"),
        (create("-s", "8G"), 8, "exceeds the largest free HPA extent of decoder0.0 (4 GiB)"),
        (create("-g", "100"), 8, "granularity 100: a power of 2 from 256 to 16384"),
        (create(targets=("mem9",)), 6, "mem9: no such memdev"),
        (create("-U", UUID, t="ram", targets=("mem1",)), 8, "a ram region has no uuid"),
        (create(targets=("decoder1.0",)), 8, "not an endpoint decoder"),
    ],
)
def test_create_region_misuse(args: list[str], code: int, message: str) -> None:
    r = cli("create-region", *args)
    assert r.exit_code == code, r.stderr
    assert message in r.stderr
    assert json.loads(ok("list", "-R", "-i", "--json").stdout) == []  # no region


def test_second_region_on_a_full_device_is_refused_before_writing() -> None:
    ok("create-region", "-t", "pmem", "mem0")
    r = cli("create-region", "-t", "pmem", "mem0")
    assert r.exit_code == 8
    assert "no free pmem capacity on mem0" in r.stderr


def test_create_on_a_disabled_memdev() -> None:
    ok("disable-memdev", "mem0")
    r = cli("create-region", "-t", "pmem", "mem0")
    assert r.exit_code == 8
    assert "mem0: not enabled (no endpoint port)" in r.stderr


def test_hpa_order_violation_is_explained_and_rolled_back() -> None:
    ok("create-region", "-t", "ram", "mem1")
    ok("create-region", "-t", "pmem", "mem0")
    ok("destroy-region", "-f", "region0")
    r = cli("create-region", "-t", "ram", "mem1")
    assert r.exit_code == 7
    assert "region0: target0 = mem1 (decoder3.0): target position busy, or HPA order" in r.stderr
    assert "(EBUSY)" in r.stderr
    # exactly what had been written, and what was undone
    assert (
        "written before it: decoder0.0: create region0, region0: granularity 256, region0: "
        "ways 1, region0: size 256 MiB, mem1: decoder3.0 reserve 256 MiB; rolled back: "
        "region0 deleted, decoder3.0 DPA freed"
    ) in r.stderr
    # the region is deleted and the DPA it reserved freed (cxl-cli leaves the DPA)
    d = json.loads(ok("list", "-D", "-d", "decoder3.0", "-i", "--json").stdout)
    assert "dpa_size" not in d[0]
    assert json.loads(ok("list", "-R", "-i", "--json").stdout)[0].get("region") == "region1"


def test_kernel_errno_rules_reach_the_user() -> None:
    """A refusal our checks do not predict still names the rule (raw size EINVAL)."""
    fs = fs_of(("pmem", "pmem"))
    p = plan(fs, mode="pmem", targets=["mem0", "mem1"])
    bad = rg.Plan(p.root_decoder, p.mode, p.ways, p.granularity, 0x10000000, None, p.targets, False)
    with pytest.raises(rg.TopologyError) as e:
        rg.create_region(fs, bad)
    assert e.value.errno == errno.EINVAL
    assert "size must be a multiple of 256 MiB x 2 ways" in e.value.message
    assert not fs.exists("bus/cxl/devices/region0")


def test_reserve_and_free_dpa() -> None:
    r = cli("reserve-dpa", "mem0")
    assert r.exit_code == 2  # -t is required: cxl-cli's default is wrong
    r = ok("reserve-dpa", "mem0", "-t", "pmem", "--json")
    (row,) = json.loads(r.stdout)
    assert row["decoder"] == {
        "decoder": "decoder2.0",
        "interleave_ways": 1,
        "state": "disabled",
        "dpa_resource": 0,
        "dpa_size": 268435456,
        "mode": "pmem",
    }
    r = cli("reserve-dpa", "mem0", "-t", "pmem", "-s", "256M")
    assert r.exit_code == 8
    assert "exceeds the free pmem capacity of mem0 (0x0)" in r.stderr
    r = cli("reserve-dpa", "mem1", "-t", "ram", "-s", "100M")
    assert r.exit_code == 8
    assert "DPA is reserved in 256 MiB units" in r.stderr
    r = cli("reserve-dpa", "mem1", "-t", "pmem")
    assert r.exit_code == 8
    assert "mem1 has no pmem capacity" in r.stderr
    r = cli("reserve-dpa", "mem1", "-t", "ram", "-d", "decoder3.1")
    assert r.exit_code == 7
    assert "out of sequence" in r.stderr
    r = ok("free-dpa", "mem0", "--json")
    (row,) = json.loads(r.stdout)
    assert row["decoder"] == {
        "decoder": "decoder2.0",
        "interleave_ways": 1,
        "state": "disabled",
        "mode": "pmem",
    }
    r = ok("free-dpa", "mem0")
    assert "mem0: no DPA reservation to free" in r.stderr
    (row,) = json.loads(ok("free-dpa", "mem0", "--json").stdout)
    assert (row["memdev"], row["changed"], row["outcome"]) == ("mem0", False, "unchanged")
    # a reservation is picked up by create-region
    ok("reserve-dpa", "mem1", "-t", "ram")
    ok("create-region", "-t", "ram", "mem1")
    r = cli("free-dpa", "mem1")
    assert r.exit_code == 7
    assert "decoder3.0 is in region0" in r.stderr


def test_ports_and_bus() -> None:
    ok("create-region", "-t", "ram", "mem1")
    r = cli("disable-port", "port1")
    assert r.exit_code == 7
    assert "memdevs below it are in active regions: mem1 (region0)" in r.stderr
    ok("disable-port", "-e", "endpoint2")  # mem0 is in no region: no -f needed (cxl-cli wants it)
    assert "endpoint2" not in ok("list", "-E", "--json").stdout
    ok("enable-port", "-e", "endpoint2")
    r = cli("disable-port", "root0")
    assert r.exit_code == 6
    assert "disable-bus" in r.stderr
    r = cli("disable-port", "port9")
    assert r.exit_code == 6
    assert "port9: no such port" in r.stderr  # cxl-cli exits 0
    r = cli("disable-bus", "root0")
    assert r.exit_code == 7
    assert "active regions would be torn down: region0" in r.stderr
    ok("destroy-region", "-f", "region0")
    ok("disable-port", "port1")
    (p,) = json.loads(ok("list", "-P", "-i", "--json").stdout)
    assert p["state"] == "disabled"
    assert "enabled port1, mem0, mem1" in ok("enable-port", "-m", "port1").stderr
    ok("disable-bus", "root0")
    assert json.loads(ok("list", "-B", "--json").stdout) == []
    r = cli("enable-region", "region9")
    assert r.exit_code == 6  # cxl-cli exits 0 for an unknown region


def test_destroy_a_region_whose_target_went_away() -> None:
    ok("create-region", "-t", "ram", "mem1")
    ok("disable-memdev", "-f", "mem1")
    ok("enable-memdev", "mem1")
    (reg,) = json.loads(ok("list", "-R", "-i", "--json").stdout)
    assert (reg["decode_state"], reg["state"]) == ("reset", "disabled")
    ok("destroy-region", "region0")  # cxl-cli 81 fails here (ENXIO) and leaves it
    assert json.loads(ok("list", "-R", "-i", "--json").stdout) == []


def _ident(total: int, vol: int, pers: int, align: int) -> Identify:
    return Identify("FW", total, vol, pers, align, 0, 0, 0, 0, 0, 0, 0, 0, False, False, 0, None, 0)


def _part(av: int, ap: int) -> PartitionInfo:
    return PartitionInfo(av, ap, 0, 0, 0)


G = 1 << 30
M256 = 256 << 20


def test_partition_plan() -> None:
    from cxlctl.partition import plan_partition, set_partition_payload

    ident, part = _ident(4 * G, 0, 0, M256), _part(2 * G, 2 * G)
    p = plan_partition("mem0", ident, part, "ram", 1 * G)
    assert p.volatile_size == 1 * G
    assert (p.after["next_volatile_size"], p.after["next_persistent_size"]) == (1 * G, 3 * G)
    assert set_partition_payload(p) == (4).to_bytes(8, "little") + b"\0\0"  # no immediate flag
    assert plan_partition("mem0", ident, part, "pmem", 1 * G).volatile_size == 3 * G
    assert plan_partition("mem0", ident, part, "pmem", None).volatile_size == 0
    assert plan_partition("mem0", ident, part, "ram", None).volatile_size == 4 * G
    with pytest.raises(rg.TopologyError, match="not a multiple of the partition alignment"):
        plan_partition("mem0", ident, part, "ram", 100 << 20)
    assert plan_partition("mem0", ident, part, "ram", 100 << 20, align=True).volatile_size == M256
    assert plan_partition("mem0", ident, part, "pmem", 100 << 20, align=True).volatile_size == (
        4 * G - M256
    )
    with pytest.raises(rg.TopologyError, match="exceeds the partitionable capacity"):
        plan_partition("mem0", ident, part, "ram", 5 * G)
    with pytest.raises(rg.TopologyError, match="partition alignment 0"):
        plan_partition("mem0", _ident(M256, M256, 0, 0), part, "ram", None)


def test_set_partition_on_qemu_like_devices_is_refused_before_sending() -> None:
    r = cli("set-partition", "mem0", "-t", "ram", "-s", "0")
    assert r.exit_code == 8
    assert "mem0: no capacity can be repartitioned (partition alignment 0" in r.stderr


def test_dry_run_prints_libcxls_writes_and_changes_nothing() -> None:
    r = ok("create-region", "-t", "ram", "mem1", "--dry-run")
    exp = libcxl("### 5.1 `cxl create-region -m -t ram")
    lines = r.stdout.splitlines()
    assert lines[0] == "region0: would do:"
    assert lines[1 : 1 + len(exp)] == [f"  write /sys/{p} <- {d.decode()!r}" for p, d, _ in exp]
    assert "region0: dry run, nothing was changed" in r.stderr
    assert json.loads(ok("list", "-R", "-i", "--json").stdout) == []
    (plan,) = json.loads(ok("create-region", "-t", "ram", "mem1", "--dry-run", "--json").stdout)
    assert (plan["region"], plan["changed"], plan["outcome"]) == ("region0", False, "planned")
    assert [(x["target"], x["length"]) for x in plan["plan"]] == [
        (f"/sys/{p}", len(d)) for p, d, _ in exp
    ]
    ok("create-region", "-t", "ram", "mem1")
    r = ok("destroy-region", "-f", "region0", "--dry-run")
    assert "  write /sys/devices/platform/ACPI0017:00/root0/decoder0.0/delete_region <- " \
        "'region0\\x00'" in r.stdout.splitlines()  # fmt: skip
    assert [x["region"] for x in json.loads(ok("list", "-R", "--json").stdout)] == ["region0"]


class _StopAt:
    """The seam, with a signal (KeyboardInterrupt) arriving at the write to PATH."""

    def __init__(self, fs: SimSysfs, suffix: str) -> None:
        self.fs, self.suffix = fs, suffix

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.fs, attr)

    def write(self, path: str, data: bytes) -> None:
        if path.endswith(self.suffix):
            raise KeyboardInterrupt
        self.fs.write(path, data)


def test_a_signal_midway_through_create_region_rolls_back_and_says_what() -> None:
    from cxlctl.sysfs import Sysfs

    fs = fs_of()
    stop: Sysfs = _StopAt(fs, "/commit")
    with pytest.raises(KeyboardInterrupt) as e:
        rg.create_region(stop, plan(fs, mode="ram", targets=["mem1"]))
    done = getattr(e.value, "cxlctl_done", "")
    assert done.startswith("written before it: decoder0.0: create region0, region0: ")
    assert "region0: target0 = mem1 (decoder3.0)" in done
    assert done.endswith("rolled back: region0 deleted, decoder3.0 DPA freed")
    topo = read_topology(fs)
    assert list(topo.regions()) == []
    assert all(not d.dpa_size for d in topo.decoders() if d.kind == "endpoint")
