"""``cxl list``'s topology walk and JSON, over a :class:`~cxlctl.topology.Topology`.

A port of ndctl 81's ``cxl/filter.c`` (``cxl_filter_walk``) and ``cxl/json.c``:
the same object selection (``-B -P -E -D -T -R -X -M``), filters (``-b -p -e -d
-r -m -s``), ``-i`` (idle objects), ``-S`` (no descendants of a filtered port),
``-v`` levels, the same keys in the same order, the same nesting
(``ports:root0``, ``endpoints:port1``, ``decoders:endpoint2``,
``regions:decoder0.0``) and the same value types (``-u``: sizes as
``"256.00 MiB (268.44 MB)"``, ids and addresses as ``"0x…"`` strings).

Two differences, on purpose (docs/topology.md): the result is always a list (with
``cxl_compat=True`` the caller may unwrap a single object as cxl-cli does), and a
memdev's extra blocks (``-I -F -H -A -L``) come from a callback, since they need the
mailbox.  Nothing here prints.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .topology import Decoder, Memdev, Port, Region, Topology

Json = dict[str, Any]
MemdevJson = Callable[[Memdev], Json]


@dataclass
class Params:
    memdevs: bool = False
    buses: bool = False
    ports: bool = False
    endpoints: bool = False
    decoders: bool = False
    regions: bool = False
    targets: bool = False
    dax: bool = False
    idle: bool = False
    human: bool = False
    single: bool = False
    memdev_filter: str | None = None
    serial_filter: str | None = None
    bus_filter: str | None = None
    port_filter: str | None = None
    endpoint_filter: str | None = None
    decoder_filter: str | None = None
    region_filter: str | None = None
    verbose: int = 0

    def normalise(self) -> Params:
        """cmd_list()'s defaults: a filter alone selects its object class (and
        -S); nothing selected lists regions and memdevs; -v levels add classes."""
        p = self
        if not (p.memdevs or p.buses or p.ports or p.endpoints or p.decoders or p.regions):
            if p.memdev_filter or p.serial_filter:
                p.memdevs = True
            if p.bus_filter:
                p.buses = True
            if p.port_filter:
                p.ports = True
            if p.endpoint_filter:
                p.endpoints = True
            if p.decoder_filter:
                p.decoders = True
            p.single = True
            if p.region_filter:
                p.regions = True
        if not (p.memdevs or p.buses or p.ports or p.endpoints or p.decoders or p.regions):
            p.regions = p.memdevs = True
        if p.verbose >= 3:
            p.dax = True
        if p.verbose >= 2:
            p.idle = True
        if p.verbose >= 1:
            p.buses = p.ports = p.endpoints = p.decoders = p.targets = p.regions = True
        if _has(p.port_filter, "root") and p.ports:
            p.buses = True
        if _has(p.port_filter, "endpoint") and p.ports:
            p.endpoints = True
        return p


def _tokens(ident: str | None) -> list[str]:
    if ident is None:
        return []
    sep = "," if "," in ident else " "
    return [t for t in ident.split(sep) if t]


def _has(ident: str | None, word: str) -> bool:
    return word in _tokens(ident)


def _id_match(name: str, prefix: str, tok: str) -> bool:
    if tok == name:
        return True
    m = re.fullmatch(rf"(?:{prefix})?(\d+)", tok)
    return m is not None and name == f"{prefix}{int(m.group(1))}"


# --- filters (cxl/filter.c) ----------------------------------------------------------


class Walker:
    def __init__(self, topo: Topology, p: Params, memdev_json: MemdevJson | None = None) -> None:
        self.t = topo
        self.p = p
        self.memdev_json_cb = memdev_json

    def memdev_match(self, m: Memdev) -> bool:
        p = self.p
        if p.memdev_filter is not None:
            toks = _tokens(p.memdev_filter)
            if "all" not in toks and not any(_id_match(m.name, "mem", t) for t in toks):
                return False
        if p.serial_filter is not None:
            ok = False
            for t in _tokens(p.serial_filter):
                try:
                    ok = ok or int(t, 0) == m.serial
                except ValueError:
                    continue
            if not ok:
                return False
        return True

    def _filtering_memdevs(self) -> bool:
        return self.p.memdev_filter is not None or self.p.serial_filter is not None

    def memdevs_below(self, port: Port) -> list[Memdev]:
        return [e.memdev for e in port.walk() if e.kind == "endpoint" and e.memdev is not None]

    def port_hosts_match(self, port: Port) -> bool:
        if not self._filtering_memdevs():
            return True
        return any(self.memdev_match(m) for m in self.memdevs_below(port))

    def port_name_match(self, port: Port, ident: str | None, *, ancestry: bool) -> bool:
        if ident is None:
            return True
        chain = [port, *self.t.ancestors(port)] if ancestry else [port]
        for tok in _tokens(ident):
            for cand in chain:
                if tok == "all":
                    return True
                if tok == "root" and cand.kind == "root":
                    return True
                if tok == "switch" and cand.kind == "port":
                    return True
                if tok == "endpoint" and cand.kind == "endpoint":
                    return True
                if tok == cand.name or (_id_match(cand.name, "port", tok) and cand.kind == "port"):
                    return True
        return False

    def port_filter(self, port: Port) -> bool:
        return self.port_name_match(port, self.p.port_filter, ancestry=not self.p.single)

    def bus_of(self, port: Port) -> str:
        chain = [port, *self.t.ancestors(port)]
        return chain[-1].name

    def bus_match(self, port: Port) -> bool:
        if self.p.bus_filter is None:
            return True
        bus = self.bus_of(port)
        # util_cxl_bus_filter(): "all", the id, rootN, the name, or the provider
        provider = next((b.provider for b in self.t.buses if b.name == bus), None)
        return any(
            t in ("all", bus, provider) or _id_match(bus, "root", t)
            for t in _tokens(self.p.bus_filter)
        )

    def decoder_name_match(self, d: Decoder) -> bool:
        ident = self.p.decoder_filter
        if ident is None:
            return True
        for tok in _tokens(ident):
            if tok == "all" or tok == d.name or tok == d.name[7:]:
                return True
            if tok == "root" and d.kind == "root":
                return True
            if tok == "switch" and d.kind == "switch":
                return True
            if tok == "endpoint" and d.kind == "endpoint":
                return True
        return False

    def decoder_memdev_match(self, d: Decoder) -> bool:
        if not self._filtering_memdevs():
            return True
        port = self.t.port(d.port)
        if port is None:
            return False
        return self.port_hosts_match(port)

    def region_match(self, r: Region) -> bool:
        ident = self.p.region_filter
        if ident is None:
            return True
        return any(t == "all" or _id_match(r.name, "region", t) for t in _tokens(ident))

    def decoder_region_match(self, d: Decoder) -> bool:
        if self.p.region_filter is None:
            return True
        if any(self.region_match(r) for r in self.t.regions_of(d)):
            return True
        r = self.t.region_of_decoder(d)
        return r is not None and self.region_match(r)

    # -- JSON (cxl/json.c) ------------------------------------------------------------
    def size(self, v: int) -> Any:
        from .units import human_size

        return human_size(v) if self.p.human else v

    def hexv(self, v: int) -> Any:
        return (f"{v:#x}" if v else "0") if self.p.human else v

    def memdev_json(self, m: Memdev) -> Json:
        if self.memdev_json_cb is not None:
            return self.memdev_json_cb(m)
        d: Json = {"memdev": m.name}
        if m.pmem_size:
            d["pmem_size"] = self.size(m.pmem_size)
            if m.pmem_qos_class is not None:
                d["pmem_qos_class"] = m.pmem_qos_class
        if m.ram_size:
            d["ram_size"] = self.size(m.ram_size)
            if m.ram_qos_class is not None:
                d["ram_qos_class"] = m.ram_qos_class
        d["serial"] = self.hexv(m.serial)
        if m.numa_node >= 0:
            d["numa_node"] = m.numa_node
        d["host"] = m.host
        if m.firmware_version:
            d["firmware_version"] = m.firmware_version
        if not m.enabled:
            d["state"] = "disabled"
        return d

    def bus_json(self, port: Port, provider: str) -> Json:
        return {"bus": port.name, "provider": provider}

    def port_json(self, port: Port) -> Json:
        d: Json = {"endpoint" if port.kind == "endpoint" else "port": port.name, "host": port.host}
        if port.parent_dport is not None:
            d["parent_dport"] = port.parent_dport
        d["depth"] = port.depth
        if not port.enabled:
            d["state"] = "disabled"
        d["decoders_committed"] = port.decoders_committed
        return d

    def dports_json(self, j: Json, port: Port) -> None:
        if not port.dports or not self.p.targets:
            return
        j["nr_dports"] = len(port.dports)
        out = []
        for dp in port.dports:
            if self._filtering_memdevs() and not self._dport_hosts_match(port, dp.path):
                continue
            e: Json = {"dport": dp.name}
            if dp.alias:
                e["alias"] = dp.alias
            e["id"] = self.hexv(dp.id)
            out.append(e)
        j["dports"] = out

    def _dport_hosts_match(self, port: Port, dport_path: str) -> bool:
        for m in self.memdevs_below(port):
            if self.memdev_match(m) and (m.path + "/").startswith(dport_path + "/"):
                return True
        return False

    def decoder_json(self, d: Decoder) -> Json:
        j: Json = {"decoder": d.name}
        if d.size and d.resource is not None:
            j["resource"] = self.hexv(d.resource)
        if d.size:
            j["size"] = self.size(d.size)
        if d.interleave_ways is not None:
            j["interleave_ways"] = d.interleave_ways
            if d.interleave_ways > 1 and d.interleave_granularity is not None:
                j["interleave_granularity"] = d.interleave_granularity
        if d.region:
            j["region"] = d.region
        if d.size == 0:
            j["state"] = "disabled"
        if d.kind == "endpoint":
            if d.dpa_size and d.dpa_resource is not None:
                j["dpa_resource"] = self.hexv(d.dpa_resource)
            if d.dpa_size:
                j["dpa_size"] = self.size(d.dpa_size)
            if d.mode:
                j["mode"] = d.mode
        if d.kind == "root" and (d.pmem_capable or d.volatile_capable):
            if d.max_available_extent is not None:
                j["max_available_extent"] = self.size(d.max_available_extent)
            if d.pmem_capable:
                j["pmem_capable"] = True
            if d.volatile_capable:
                j["volatile_capable"] = True
        if d.kind == "root" and d.accelmem_capable:
            j["accelmem_capable"] = True
        if d.kind == "root" and d.qos_class is not None and d.qos_class >= 0:
            j["qos_class"] = d.qos_class
        return j

    def targets_json(self, j: Json, d: Decoder) -> None:
        if d.kind == "endpoint":
            return
        j["nr_targets"] = len(d.targets)
        if not self.p.targets or not d.targets:
            return
        port = self.t.port(d.port)
        out = []
        for t in reversed(d.targets):  # libcxl prepends each target_list entry
            if self._filtering_memdevs() and port is not None:
                dp = next((x for x in port.dports if x.id == t.id), None)
                if dp is None or not self._dport_hosts_match(port, dp.path):
                    continue
            e: Json = {"target": t.name}
            if t.alias:
                e["alias"] = t.alias
            e["position"] = t.position
            e["id"] = self.hexv(t.id)
            out.append(e)
        j["targets"] = out

    def region_json(self, r: Region) -> Json:
        j: Json = {"region": r.name}
        if r.resource is not None:
            j["resource"] = self.hexv(r.resource)
        j["size"] = self.size(r.size)
        if r.mode in ("ram", "pmem"):
            j["type"] = r.mode
        j["interleave_ways"] = r.interleave_ways
        j["interleave_granularity"] = r.interleave_granularity
        j["decode_state"] = "commit" if r.committed else "reset"
        if not r.enabled:
            j["state"] = "disabled"
        if self.p.targets and r.mappings:
            j["mappings"] = [
                {
                    "position": m.position,
                    **({"memdev": m.memdev} if m.memdev else {}),
                    "decoder": m.decoder,
                }
                for m in r.mappings
            ]
        if self.p.dax and r.daxregion is not None:
            x = r.daxregion
            j["daxregion"] = {
                "id": x.id,
                "size": self.size(x.size),
                "align": x.align,
                "devices": [
                    {
                        "chardev": dv.chardev,
                        "size": self.size(dv.size),
                        "target_node": dv.target_node,
                        "align": dv.align,
                        "mode": dv.mode,
                        **(
                            {
                                "online_memblocks": dv.online_memblocks,
                                "total_memblocks": dv.total_memblocks,
                                "movable": dv.movable,
                            }
                            if dv.mode == "system-ram"
                            else {}
                        ),
                    }
                    for dv in x.devices
                ],
            }
        if r.qos_class_mismatch:
            j["qos_class_mismatch"] = True
        return j

    # -- the walk ------------------------------------------------------------------------
    def walk(self) -> list[Json]:
        p = self.p
        anon: list[Json] = []
        buses: list[Json] = []
        ports: list[Json] = []
        eps: list[Json] = []
        devs: list[Json] = []
        busdec: list[Json] = []
        portdec: list[Json] = []
        epdec: list[Json] = []
        regions: list[Json] = []
        for m in self.t.memdevs:
            if not self.memdev_match(m) or m.enabled or not p.idle:
                continue
            if self.t.endpoint_of(m) is not None:
                continue
            if p.memdevs:
                anon.append(self.memdev_json(m))
        for bus in self.t.buses:
            port = bus.port
            jbus: Json | None = None
            c_ports: list[Json] | None = None
            c_eps: list[Json] | None = None
            c_devs: list[Json] | None = None
            c_dec: list[Json] | None = None
            c_reg: list[Json] | None = None
            if not self.port_hosts_match(port) and self._filtering_memdevs():
                continue
            if self.bus_match(port) and self.port_filter(port) and p.buses:
                jbus = self.bus_json(port, bus.provider)
                self.dports_json(jbus, port)
                buses.append(jbus)
                c_ports = [] if p.ports else None
                c_eps = [] if p.endpoints else None
                c_devs = [] if p.memdevs else None
                c_dec = [] if p.decoders else None
                c_reg = [] if p.regions else None
            self.walk_decoders(port, _pick(c_dec, busdec), _pick(c_reg, regions))
            if p.endpoints or p.memdevs or p.decoders:
                self.walk_endpoints(
                    port, _pick(c_eps, eps), _pick(c_devs, devs), _pick(c_dec, epdec)
                )
            self._descend(
                port,
                jbus,
                (c_ports, c_eps, c_dec, c_reg, c_devs),
                (ports, portdec, eps, epdec, devs),
            )
        groups = [
            ("anon memdevs", anon),
            ("buses", buses),
            ("ports", ports),
            ("endpoints", eps),
            ("memdevs", devs),
            ("root decoders", busdec),
            ("port decoders", portdec),
            ("endpoint decoders", epdec),
            ("regions", regions),
        ]
        n = sum(1 for _, g in groups if g)
        out: list[Json] = []
        for name, g in groups:
            if not g:
                continue
            if n > 1:
                out.append({name: g})
            else:
                out.extend(g)
        return out

    def walk_regions(self, d: Decoder, out: list[Json]) -> None:
        p = self.p
        for r in self.t.regions_of(d):
            if not self.region_match(r) or not self.bus_match(self._root_of(d)):
                continue
            if not self.port_name_match(self._root_of(d), p.port_filter, ancestry=True):
                continue
            if p.decoder_filter is not None and not self.decoder_name_match(d):
                continue
            if not p.idle and not r.enabled:
                continue
            out.append(self.region_json(r))

    def _root_of(self, d: Decoder) -> Port:
        port = self.t.port(d.port)
        assert port is not None
        return port

    def walk_decoders(self, port: Port, out: list[Json] | None, regions: list[Json] | None) -> None:
        p = self.p
        for d in port.decoders:
            jd: Json | None = None
            child: list[Json] | None = None
            if (
                p.decoders
                and out is not None
                and self.decoder_name_match(d)
                and self.bus_match(port)
                and self.port_filter(port)
                and self.decoder_memdev_match(d)
                and self.decoder_region_match(d)
            ):
                if not p.idle and d.size == 0:
                    continue
                jd = self.decoder_json(d)
                self.targets_json(jd, d)
                if p.regions:
                    child = []
                out.append(jd)
            if not p.regions or port.kind != "root":
                continue
            target = _pick(child, regions)
            if target is not None:
                self.walk_regions(d, target)
            _add(jd, f"regions:{d.name}", child)

    def walk_endpoints(
        self,
        port: Port,
        jeps: list[Json] | None,
        jdevs: list[Json] | None,
        jdec: list[Json] | None,
    ) -> None:
        p = self.p
        for ep in port.endpoints:
            if p.endpoint_filter is not None and not any(
                t in ("all", ep.name) or _id_match(ep.name, "endpoint", t)
                for t in _tokens(p.endpoint_filter)
            ):
                continue
            if not self.bus_match(ep):
                continue
            if (
                p.port_filter is not None
                and not self.port_name_match(port, p.port_filter, ancestry=not p.single)
                and not self.port_name_match(ep, p.port_filter, ancestry=False)
            ):
                continue
            if self._filtering_memdevs() and not (ep.memdev and self.memdev_match(ep.memdev)):
                continue
            if not p.idle and not ep.enabled:
                continue
            jep: Json | None = None
            if p.endpoints and jeps is not None:
                jep = self.port_json(ep)
                jeps.append(jep)
            if p.memdevs:
                m = ep.memdev
                if m is None or not self.memdev_match(m):
                    continue
                if p.decoder_filter is not None and not self._memdev_has_decoder(ep):
                    continue
                if not p.idle and not m.enabled:
                    continue
                jm = self.memdev_json(m)
                if jep is not None:
                    jep["memdev"] = jm
                elif jdevs is not None:
                    jdevs.append(jm)
            child: list[Json] | None = [] if p.decoders and p.endpoints else None
            if not p.decoders:
                continue
            self.walk_decoders(ep, _pick(child, jdec), None)
            _add(jep, f"decoders:{ep.name}", child)

    def _memdev_has_decoder(self, ep: Port) -> bool:
        chain = [ep, *self.t.ancestors(ep)]
        return any(self.decoder_name_match(d) for port in chain for d in port.decoders)

    def walk_ports(
        self,
        parent: Port,
        jports: list[Json] | None,
        jportdec: list[Json] | None,
        jeps: list[Json] | None,
        jepdec: list[Json] | None,
        jdevs: list[Json] | None,
    ) -> None:
        p = self.p
        for port in parent.ports:
            if not self.port_hosts_match(port):
                continue
            jport: Json | None = None
            c_ports: list[Json] | None = None
            c_eps: list[Json] | None = None
            c_dec: list[Json] | None = None
            c_devs: list[Json] | None = None
            if self.port_filter(port) and self.bus_match(port):
                if not p.idle and not port.enabled:
                    continue
                if p.ports and jports is not None:
                    jport = self.port_json(port)
                    self.dports_json(jport, port)
                    jports.append(jport)
                    c_ports = []
                    c_devs = [] if p.memdevs else None
                    c_eps = [] if p.endpoints else None
                    c_dec = [] if p.decoders else None
            if p.endpoints or p.memdevs or p.decoders:
                self.walk_endpoints(
                    port, _pick(c_eps, jeps), _pick(c_devs, jdevs), _pick(c_dec, jepdec)
                )
            self.walk_decoders(port, _pick(c_dec, jportdec), None)
            self._descend(
                port,
                jport,
                (c_ports, c_eps, c_dec, None, c_devs),
                (jports, jportdec, jeps, jepdec, jdevs),
            )

    def _descend(
        self,
        port: Port,
        jobj: Json | None,
        own: tuple[list[Json] | None, ...],
        flat: tuple[list[Json] | None, ...],
    ) -> None:
        """The ports below ``port``, then ``jobj`` (the bus's or port's object, when it
        is listed) gets what was collected below it: ``own`` are its lists (ports,
        endpoints, decoders, regions, memdevs), ``flat`` the top-level ones (ports,
        port decoders, endpoints, endpoint decoders, memdevs) used where it has none."""
        c_ports, c_eps, c_dec, c_reg, c_devs = own
        jports, jportdec, jeps, jepdec, jdevs = flat
        self.walk_ports(
            port,
            _pick(c_ports, jports),
            _pick(c_dec, jportdec),
            _pick(c_eps, jeps),
            _pick(c_dec, jepdec),
            _pick(c_devs, jdevs),
        )
        for key, arr in (("ports", c_ports), ("endpoints", c_eps), ("decoders", c_dec),
                         ("regions", c_reg), ("memdevs", c_devs)):  # fmt: skip
            _add(jobj, f"{key}:{port.name}", arr)


def _pick(child: list[Json] | None, container: list[Json] | None) -> list[Json] | None:
    return child if child is not None else container


def _add(obj: Json | None, key: str, arr: list[Json] | None) -> None:
    if obj is not None and arr:
        obj[key] = arr


def cxl_list(topo: Topology, params: Params, memdev_json: MemdevJson | None = None) -> list[Json]:
    """``cxl list`` over ``topo``: always a list (cxl-cli unwraps a single object)."""
    return Walker(topo, params.normalise(), memdev_json).walk()


def cxl_cli_json(objects: list[Json], human: bool) -> list[Json] | Json | None:
    """What ``cxl list`` prints for OBJECTS (ndctl's ``util_display_json_array``):
    the array, except that with ``-u`` (HUMAN) a single object is printed bare and
    no object prints nothing at all (None).  Without ``-u`` even an empty result
    is an array: ``[]``."""
    if len(objects) > 1 or not human:
        return objects
    return objects[0] if objects else None
