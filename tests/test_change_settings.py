"""set-timestamp, set-shutdown-state, clear-log, set-event-interrupt-policy,
inject-protocol-error and the `poison --inject/--clear` aliases under the change
contract; EBUSY explained per cause (cxlctl/why.py); wait-sanitize's report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_change import snapshot

from cxlctl import devops, why
from cxlctl.backends import KernelBackend, SimBackend
from cxlctl.cli import main
from cxlctl.errors import ExitCode
from cxlctl.mailbox.linux import VENDOR_DEBUG_UUID_BYTES
from cxlctl.sim import make_devices

Cli = Callable[..., Result]
RAW = {"CXLCTL_SIM_RAW": "1"}
QEMU = {"CXLCTL_SIM_PROFILE": "qemu", "CXLCTL_SIM_TIME_SCALE": "0"}
VENDOR_DEBUG = "5e1819d9-11a9-400c-811f-d60719403d86"


@pytest.fixture
def state(tmp_path: Path) -> dict[str, str]:
    return {"CXLCTL_SIM_STATE": str(tmp_path / "state")}


def _json(r: Result) -> list[dict[str, object]]:
    out: list[dict[str, object]] = json.loads(r.stdout)
    return out


# --- set-timestamp -------------------------------------------------------------------------


def test_set_timestamp_needs_raw_and_says_why(cli: Cli) -> None:
    r = cli("set-timestamp", "mem0", "--json")
    assert r.exit_code == ExitCode.NOT_SUPPORTED
    (row,) = _json(r)
    assert row["outcome"] == "failed"
    assert "not available on this kernel, because the kernel sets the device's timestamp" in str(
        row["reason"]
    )
    assert "CONFIG_CXL_MEM_RAW_COMMANDS" in str(row["reason"])


def test_set_timestamp_persists_and_dry_run_changes_nothing(
    cli: Cli, state: dict[str, str]
) -> None:
    env = {**RAW, **state}
    ns = 1_700_000_000_000_000_000
    r = cli("set-timestamp", "mem0", "--time", str(ns), "--dry-run", "--json", env=env)
    assert r.exit_code == 0, r.stderr
    (row,) = _json(r)
    assert row["outcome"] == "planned"
    assert row["changed"] is False
    plan = row["plan"]
    assert isinstance(plan, list)
    assert plan[0]["opcode"] == 0x0301
    assert plan[0]["in_payload_head"] == ns.to_bytes(8, "little").hex()
    assert not Path(state["CXLCTL_SIM_STATE"]).exists() or not snapshot(
        Path(state["CXLCTL_SIM_STATE"])
    )
    r = cli("set-timestamp", "mem0", "--time", str(ns), "--json", env=env)
    assert r.exit_code == 0, r.stderr
    assert _json(r)[0]["changed"] is True
    # another process reads the clock that was set (still running from ns)
    (t,) = _json(cli("timestamp", "mem0", "--json", env=env))
    assert ns <= int(str(t["timestamp"])) < ns + 600 * 10**9
    assert cli("set-timestamp", "mem0", "--now", "--time", "1", env=env).exit_code == 2


# --- set-shutdown-state --------------------------------------------------------------------


def test_set_shutdown_state_is_kernel_owned_until_disabled(cli: Cli, state: dict[str, str]) -> None:
    r = cli("set-shutdown-state", "mem0", "dirty", "--json", env=state)
    assert r.exit_code == ExitCode.BUSY
    reason = str(_json(r)[0]["reason"])
    assert "claimed Set Shutdown State for exclusive use" in reason
    assert "nvdimm bridge" in reason
    assert "hint: disable the memdev first (`cxlctl disable-memdev mem0`)" in reason
    assert cli("disable-memdev", "mem0", env=state).exit_code == 0
    d = Path(state["CXLCTL_SIM_STATE"])
    before = snapshot(d)
    assert cli("set-shutdown-state", "mem0", "dirty", "--dry-run", env=state).exit_code == 0
    assert snapshot(d) == before
    (row,) = _json(cli("set-shutdown-state", "mem0", "dirty", "--json", env=state))
    assert (row["outcome"], row["state"], row["previous_state"]) == ("changed", "dirty", "clean")
    (s,) = _json(cli("shutdown-state", "mem0", "--json", env=state))
    assert s["dirty"] is True
    (row,) = _json(cli("set-shutdown-state", "mem0", "dirty", "--json", env=state))
    assert (row["outcome"], row["changed"]) == ("unchanged", False)


def test_set_shutdown_state_on_qemu_is_not_in_the_cel(cli: Cli) -> None:
    r = cli("set-shutdown-state", "mem0", "clean", env=QEMU)
    assert r.exit_code == ExitCode.NOT_SUPPORTED
    assert "its Command Effects Log does not list Set Shutdown State (0x4204)" in r.stderr
    assert "[ENOTTY]" in r.stderr


# --- clear-log -----------------------------------------------------------------------------


def test_clear_log_contract_and_the_kernels_rule(cli: Cli, state: dict[str, str]) -> None:
    r = cli("clear-log", "mem0", "cel", "-y", env=state)
    assert r.exit_code == ExitCode.BUSY
    assert "the kernel lets userspace clear only the Vendor Debug Log" in r.stderr
    assert "disable the memdev" not in r.stderr
    r = cli("clear-log", "mem0", "vendor-debug", env=state)
    assert r.exit_code == ExitCode.USAGE  # destroys a log: no terminal, no -y
    assert "mem0 (serial 0x1234)" in r.stderr
    assert cli("clear-log", "mem0", "vendor-debug", "--dry-run", env=state).exit_code == 0
    before = _json(cli("logs", "mem0", "--json", env=state))[0]["logs"]
    assert isinstance(before, list)
    assert {x["uuid"]: x["size"] for x in before}[VENDOR_DEBUG] == 3000  # dry run: kept
    (row,) = _json(cli("clear-log", "mem0", "vendor-debug", "-y", "--json", env=state))
    assert (row["outcome"], row["log"]) == ("changed", VENDOR_DEBUG)
    after = _json(cli("logs", "mem0", "--json", env=state))[0]["logs"]
    assert isinstance(after, list)
    assert {x["uuid"]: x["size"] for x in after}[VENDOR_DEBUG] == 0


def test_clear_log_on_qemu_is_not_in_the_cel(cli: Cli) -> None:
    r = cli("clear-log", "mem0", "vendor-debug", "-y", env=QEMU)
    assert r.exit_code == ExitCode.NOT_SUPPORTED
    assert "does not list Clear Log (0x0403)" in r.stderr


# --- set-event-interrupt-policy ------------------------------------------------------------


def test_set_event_interrupt_policy(cli: Cli, state: dict[str, str]) -> None:
    env = {**RAW, **state}
    assert cli("set-event-interrupt-policy", "mem0", env=env).exit_code == 2  # nothing to set
    r = cli("set-event-interrupt-policy", "mem0", "--info", "none", env=state)
    assert r.exit_code == ExitCode.NOT_SUPPORTED
    assert "get-event-interrupt-policy: not available on this kernel, because" in r.stderr
    (row,) = _json(cli("set-event-interrupt-policy", "mem0", "--info", "none", "--json", env=env))
    assert row["outcome"] == "changed"
    (p,) = _json(cli("event-interrupt-policy", "mem0", "--json", env=env))
    # QEMU's rule: a log whose mode is not MSI/MSI-X has no interrupt (nor a vector)
    assert p["info"] == {"settings": 0, "mode": "none", "message_number": 0, "reserved_bits": 0}
    assert p["warn"]["mode"] == "msi_msix"  # type: ignore[index]
    (row,) = _json(cli("set-event-interrupt-policy", "mem0", "--info", "none", "--json", env=env))
    assert row["outcome"] == "unchanged"


# --- inject-protocol-error -----------------------------------------------------------------


def test_inject_protocol_error_is_not_offered_on_the_simulated_platform(cli: Cli) -> None:
    r = cli("inject-protocol-error", "0000:0d:00.0", "-s", "correctable", "-y", "--json")
    assert r.exit_code == ExitCode.NOT_SUPPORTED
    reason = str(_json(r)[0]["reason"])
    assert "not available on this kernel, because /sys/kernel/debug/cxl/einj_types does not" in (
        reason
    )
    assert "ACPI EINJ" in reason
    assert cli("inject-protocol-error", "../mem0", "-s", "fatal", "-y").exit_code == 2
    assert cli("inject-protocol-error", "0000:0d:00.0", "-s", "fatal").exit_code == 2  # no -y


def test_inject_protocol_error_writes_what_cxl_cli_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel with EINJ at a fake debugfs: einj_types read, DPORT/einj_inject <- type."""
    from cxlctl import tracefs

    dbg = tmp_path / "debug" / "cxl"
    (dbg / "0000:0c:00.0").mkdir(parents=True)
    (dbg / "einj_types").write_text(
        "0x00001000\tCXL.cache Protocol Correctable\n0x00008000\tCXL.mem Protocol Correctable\n"
    )
    (dbg / "0000:0c:00.0" / "einj_inject").write_text("")
    real = tracefs.KernelTracing.__init__

    def init(self: tracefs.KernelTracing, *a: object, **k: object) -> None:
        real(self, str(tmp_path / "sys"), None, str(dbg))

    monkeypatch.setattr(tracefs.KernelTracing, "__init__", init)
    orig = KernelBackend.__init__

    def kernel_init(self: KernelBackend, *a: object, **k: object) -> None:
        orig(self, str(tmp_path / "sys"), str(tmp_path / "dev"))

    monkeypatch.setattr(KernelBackend, "__init__", kernel_init)
    env = {"CXLCTL_BACKEND": "kernel", "NO_COLOR": "1"}
    args = ["inject-protocol-error", "0000:0c:00.0", "-p", "mem", "-s", "correctable"]
    r = CliRunner().invoke(main, [*args, "--dry-run"], env=env)
    assert r.exit_code == 0, r.output
    assert "write /sys/kernel/debug/cxl/0000:0c:00.0/einj_inject <- '0x8000\\n'" in r.output
    assert (dbg / "0000:0c:00.0" / "einj_inject").read_text() == ""
    r = CliRunner().invoke(main, [*args, "-y", "--json"], env=env)
    assert r.exit_code == 0, r.output
    assert (dbg / "0000:0c:00.0" / "einj_inject").read_text() == "0x8000\n"
    r = CliRunner().invoke(main, [*args[:4], "-s", "fatal", "-y"], env=env)
    assert r.exit_code == ExitCode.NOT_SUPPORTED
    assert "does not offer error type 0x20000" in r.output


# --- poison --inject/--clear are the verbs ---------------------------------------------------


def test_poison_inject_is_inject_media_poison(cli: Cli, state: dict[str, str]) -> None:
    r = cli("poison", "mem1", "--inject", "0x3000", env=state)
    assert r.exit_code == ExitCode.USAGE  # the verb's contract: no terminal, no -y
    assert "inject-media-poison destroys the data at DPA 0x3000 of mem1" in r.stderr
    r = cli("poison", "mem1", "--inject", "0x3000", "--dry-run", env=state)
    assert r.exit_code == 0
    assert "write /sys/kernel/debug/cxl/mem1/inject_poison <- '0x3000\\n'" in r.stdout
    mine = {"offset": 0x3000, "length": 64, "source": "Injected"}
    (p,) = _json(cli("poison", "mem1", "--json", env=state))
    assert isinstance(p["media_errors"], list)
    assert mine not in p["media_errors"]
    (p,) = _json(cli("poison", "mem1", "--inject", "0x3000", "-y", "--json", env=state))
    assert isinstance(p["media_errors"], list)
    assert mine in p["media_errors"]
    r = cli("poison", "mem1", "--inject", "0x3001", "-y", env=state)
    assert r.exit_code == ExitCode.USAGE
    assert "not 64-byte aligned" in r.stderr
    (p,) = _json(cli("poison", "mem1", "--clear", "0x3000", "--json", env=state))
    assert isinstance(p["media_errors"], list)
    assert mine not in p["media_errors"]


# --- EBUSY, per cause ----------------------------------------------------------------------


def test_ebusy_during_a_sanitize_says_wait(cli: Cli, state: dict[str, str]) -> None:
    env = {**state, "CXLCTL_SIM_TIME_SCALE": "1000"}
    assert cli("sanitize", "mem1", "-y", env=env).exit_code == 0
    r = cli("identify", "mem1", env=env)
    assert r.exit_code == ExitCode.BUSY
    assert "a sanitize (or secure erase) is running" in r.stderr
    assert "hint: wait for it: `cxlctl wait-sanitize mem1`" in r.stderr
    assert "disable the memdev" not in r.stderr


def test_ebusy_for_set_partition_immediate(cli: Cli) -> None:
    r = cli("send", "mem1", "set-partition-info", "-x", "00000000000000000100")
    assert r.exit_code == ExitCode.BUSY
    assert "refuses Set Partition Info with the immediate flag" in r.stderr
    assert "leave the immediate flag out" in r.stderr


def test_ebusy_for_kernel_owned_labels(cli: Cli) -> None:
    r = cli("send", "mem0", "set-lsa", "-x", "00000000000000005a5a")
    assert r.exit_code == ExitCode.BUSY
    assert "claimed Set Label Storage Area for exclusive use" in r.stderr
    assert "disable the memdev first" in r.stderr


def test_ebusy_during_a_firmware_transfer(cli: Cli, state: dict[str, str], tmp_path: Path) -> None:
    env = {**state, **QEMU, "CXLCTL_SIM_TIME_SCALE": "1000"}
    img = tmp_path / "fw.bin"
    img.write_bytes(b"\xa5" * 100_000)
    assert cli("update-firmware", "mem0", "-F", str(img), "-y", env=env).exit_code == 0
    r = cli("sanitize", "mem0", "-y", env=env)
    assert r.exit_code == ExitCode.BUSY
    assert "a firmware transfer is running on the device" in r.stderr
    assert "`cxlctl update-firmware mem0 -w`" in r.stderr


def test_the_hint_function_knows_each_cause() -> None:
    backend = SimBackend(devices=make_devices(["pmem"]))
    cause, hint = why.busy(backend, "mem0", opcode=0x0403, payload=bytes(16))
    assert "only the Vendor Debug Log" in cause
    cause, hint = why.busy(backend, "mem0", opcode=0x0403, payload=VENDOR_DEBUG_UUID_BYTES)
    assert "Vendor Debug" not in cause  # allowed: some other cause
    cause, hint = why.busy(backend, "mem0", opcode=0x4400, device_busy=True)
    assert "background operation" in cause
    cause, hint = why.busy(backend, "mem0")
    assert "`cxlctl query mem0`" in hint


# --- wait-sanitize says what it waited for ---------------------------------------------------


def test_wait_sanitize_reports_the_wait(
    cli: Cli, state: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (row,) = _json(cli("wait-sanitize", "mem1", "--json", env=state))
    assert (row["waited"], row["outcome"]) == (False, "unchanged")
    assert "no sanitize running" in cli("wait-sanitize", "mem1", env=state).stderr
    # a sanitize that is seen running twice, then done: no clock, no waiting
    seen = iter(["sanitize", "sanitize", "disabled"])
    monkeypatch.setattr(devops, "security_state", lambda backend, name: next(seen))
    monkeypatch.setattr(devops, "POLL_S", 0)
    r = cli("wait-sanitize", "mem1", "--json", env=state)
    assert r.exit_code == 0, r.stderr
    (row,) = _json(r)
    assert (row["waited"], row["security_state"]) == (True, "disabled")
    assert "for the running sanitize to finish: it has finished" in r.stderr
    assert "no sanitize running" not in r.stderr
