"""The simulated platform: CXL fixed memory windows, host bridges, root ports, switches.

What the firmware (ACPI CEDT/CFMWS) and the PCI hierarchy give Linux before any CXL
driver runs.  The default is the QEMU 10 platform of the reference
(``../shared/reference/topology.md`` section 1): one 4 GiB window at
``0x490000000`` (1-way, granularity 256, ram and pmem) over one host bridge
``pci0000:0c`` (ACPI UID 12) with one root port per device (``0000:0c:0N.0``).

``CXLCTL_SIM_TOPOLOGY`` changes it, as a JSON file (a path ending in ``.json``)
or a compact string of ``;``-separated items::

    hb=2,2                      two host bridges with two root ports each
    cfmws=8G:hb=0+1:ig=4096     a window over both (2-way), granularity 4096
    cfmws=1G:type=ram           another window, volatile only, over host bridge 0
    switch=0.0:2                a switch with 2 downstream ports below hb 0 port 0

The JSON file has the same items: ``{"host_bridges": [2, 2], "windows": [{"size":
"8G", "host_bridges": [0, 1], "granularity": 4096, "type": ["ram", "pmem"]}],
"switches": [{"host_bridge": 0, "root_port": 0, "downstream_ports": 2}]}``.
Devices (``CXLCTL_SIM_DEVICES``) fill the downstream slots in order: host bridge 0's
root ports (a switch's downstream ports in its place), then host bridge 1's...
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

MiB = 1 << 20
GiB = 1 << 30
#: QEMU 10's first CFMWS (reference section 1).
WINDOW_BASE = 0x490000000
HB_BUS0 = 0x0C


@dataclass(frozen=True)
class Window:
    size: int
    host_bridges: tuple[int, ...] = (0,)
    granularity: int = 256
    ram: bool = True
    pmem: bool = True


@dataclass(frozen=True)
class Switch:
    host_bridge: int
    root_port: int
    downstream_ports: int


@dataclass(frozen=True)
class Platform:
    """Host bridges (their root-port counts), windows and switches."""

    host_bridges: tuple[int, ...] = (2,)
    windows: tuple[Window, ...] = (Window(4 * GiB),)
    switches: tuple[Switch, ...] = field(default=())

    def describe(self) -> str:
        return json.dumps(
            {
                "host_bridges": list(self.host_bridges),
                "windows": [
                    [w.size, list(w.host_bridges), w.granularity, w.ram, w.pmem]
                    for w in self.windows
                ],
                "switches": [
                    [s.host_bridge, s.root_port, s.downstream_ports] for s in self.switches
                ],
            },
            sort_keys=True,
        )

    def slots(self) -> int:
        n = sum(self.host_bridges)
        for s in self.switches:
            n += s.downstream_ports - 1
        return n


_SIZE = re.compile(r"^(\d+)([KMGT]?)(i?B)?$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    if isinstance(text, int):
        return text
    s = text.strip()
    if s.lower().startswith("0x"):
        return int(s, 16)
    m = _SIZE.match(s)
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 4G, 512M, 0x100000000)")
    mult = {"": 1, "K": 1 << 10, "M": MiB, "G": GiB, "T": 1 << 40}[m.group(2).upper()]
    return int(m.group(1)) * mult


def _types(spec: Any) -> tuple[bool, bool]:
    items = spec.split("+") if isinstance(spec, str) else list(spec)
    bad = [t for t in items if t not in ("ram", "pmem")]
    if bad or not items:
        raise ValueError(f"window type must be ram, pmem or ram+pmem, not {spec!r}")
    return "ram" in items, "pmem" in items


def _window(size: Any, hbs: Any = (0,), ig: Any = 256, types: Any = ("ram", "pmem")) -> Window:
    ram, pmem = _types(types)
    w = Window(parse_size(size), tuple(int(h) for h in hbs), int(ig), ram, pmem)
    if w.size <= 0 or w.size % (256 * MiB * len(w.host_bridges)):
        raise ValueError(f"window size {w.size:#x} is not a multiple of 256 MiB x ways")
    if len(w.host_bridges) not in (1, 2, 3, 4, 6, 8, 12, 16):
        raise ValueError(f"window interleave over {len(w.host_bridges)} host bridges")
    if w.granularity not in tuple(256 << i for i in range(7)):
        raise ValueError(f"window granularity {w.granularity} (256..16384, a power of 2)")
    return w


def _check(p: Platform) -> Platform:
    if not p.host_bridges or any(n < 1 or n > 32 for n in p.host_bridges):
        raise ValueError("every host bridge needs 1 to 32 root ports")
    if len(p.host_bridges) > 8:
        raise ValueError("at most 8 host bridges")
    for w in p.windows:
        for h in w.host_bridges:
            if not 0 <= h < len(p.host_bridges):
                raise ValueError(f"window over host bridge {h}, which does not exist")
    seen = set()
    for s in p.switches:
        if not 0 <= s.host_bridge < len(p.host_bridges) or not (
            0 <= s.root_port < p.host_bridges[s.host_bridge]
        ):
            raise ValueError(f"switch below {s.host_bridge}.{s.root_port}: no such root port")
        if (s.host_bridge, s.root_port) in seen:
            raise ValueError(f"two switches below {s.host_bridge}.{s.root_port}")
        if not 1 <= s.downstream_ports <= 16:
            raise ValueError("a switch has 1 to 16 downstream ports")
        seen.add((s.host_bridge, s.root_port))
    if not p.windows:
        raise ValueError("at least one CFMWS window")
    return p


def parse(spec: str, ndevices: int) -> Platform:
    """A platform from ``CXLCTL_SIM_TOPOLOGY`` (empty: the QEMU default)."""
    spec = spec.strip()
    if not spec:
        return Platform(host_bridges=(max(ndevices, 1),))
    if spec.endswith(".json") or spec.startswith("{"):
        if spec.startswith("{"):
            data = json.loads(spec)
        else:
            with open(spec) as f:
                data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError("the topology JSON must be an object")
        return _from_json(data, ndevices)
    hbs: tuple[int, ...] | None = None
    windows: list[Window] = []
    switches: list[Switch] = []
    for item in filter(None, (x.strip() for x in spec.split(";"))):
        key, _, value = item.partition("=")
        if key == "hb":
            hbs = tuple(int(x) for x in value.split(","))
        elif key == "cfmws":
            size, *opts = value.split(":")
            kw: dict[str, Any] = {}
            for o in opts:
                k, _, v = o.partition("=")
                if k == "hb":
                    kw["hbs"] = [int(x) for x in v.split("+")]
                elif k == "ig":
                    kw["ig"] = int(v)
                elif k == "type":
                    kw["types"] = v
                else:
                    raise ValueError(f"unknown cfmws option {k!r} (hb, ig, type)")
            windows.append(_window(size, **kw))
        elif key == "switch":
            where, _, n = value.partition(":")
            h, _, r = where.partition(".")
            switches.append(Switch(int(h), int(r), int(n or 2)))
        else:
            raise ValueError(f"unknown topology item {key!r} (hb, cfmws, switch)")
    return _check(
        Platform(
            host_bridges=hbs or (max(ndevices - sum(s.downstream_ports - 1 for s in switches), 1),),
            windows=tuple(windows) or (Window(4 * GiB),),
            switches=tuple(switches),
        )
    )


def _from_json(data: dict[str, Any], ndevices: int) -> Platform:
    switches = tuple(
        Switch(int(s["host_bridge"]), int(s["root_port"]), int(s.get("downstream_ports", 2)))
        for s in data.get("switches", [])
    )
    hbs = data.get("host_bridges")
    windows = tuple(
        _window(
            w["size"],
            w.get("host_bridges", [0]),
            w.get("granularity", 256),
            w.get("type", ["ram", "pmem"]),
        )
        for w in data.get("windows", [])
    )
    return _check(
        Platform(
            host_bridges=tuple(int(x) for x in hbs)
            if hbs
            else (max(ndevices - sum(s.downstream_ports - 1 for s in switches), 1),),
            windows=windows or (Window(4 * GiB),),
            switches=switches,
        )
    )
