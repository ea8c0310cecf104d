"""The library facade: cxlctl.open(), cxlctl.list_memdevs(), Device."""

from __future__ import annotations

import inspect
import pydoc
import subprocess
import sys

import pytest

import cxlctl
from cxlctl import api
from cxlctl.backends import SimBackend
from cxlctl.memdev import Memdev
from cxlctl.sim import SimDevice


def test_import_cxlctl_loads_nothing_else() -> None:
    code = "import sys, cxlctl; print(sorted(m for m in sys.modules if m.startswith('cxlctl')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "['cxlctl']", out.stderr


def test_set_alert_config_through_the_typed_request() -> None:
    from cxlctl.mailbox.health import Alert

    with api.Device(Memdev(SimBackend(), "mem0")) as dev:
        dev.set_alert_config({Alert.LIFE_USED: 80, Alert.OVER_TEMPERATURE: None})
        a = dev.alert_config()
    assert a.life_used_prog_warn_threshold == 80
    assert a.life_used_prog_warn_threshold_valid
    assert not a.dev_over_temperature_prog_warn_threshold_valid
    with pytest.raises(ValueError, match="life_used_programmable_warning_threshold"):
        api.Device(Memdev(SimBackend(), "mem0")).set_alert_config({Alert.LIFE_USED: 256})


def test_open_and_the_typed_commands_match_memdev() -> None:
    b = cxlctl.backend("sim")
    md = Memdev(b, "mem0")
    with cxlctl.open("/dev/cxl/mem0", backend="sim") as dev:
        assert dev.name == "mem0"
        assert dev.identify() == md.identify()
        assert dev.health() == md.health()
        assert dev.partition_info() == md.partition_info()
        assert dev.fw_info() == md.fw_info()
        assert dev.alert_config() == md.alert_config()
        assert dev.shutdown_state() == md.shutdown_state()
        assert dev.supported_logs() == md.supported_logs()
        assert dev.payload_max == 2048
        assert dev.read_labels(0, 16) == md.read_lsa(0, 16)
        assert dev.get_log("cel") == b"".join(md.iter_log(cxlctl_cel()))
        assert dev.log_caps("cel") == md.log_caps(cxlctl_cel())
        assert dev.send("get-timestamp").retval == 0


def cxlctl_cel() -> str:
    from cxlctl.mailbox import CEL_UUID

    return CEL_UUID


def test_query_table_is_cached_per_open_device(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = Memdev.query

    def counting(self: Memdev) -> object:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(Memdev, "query", counting)
    with cxlctl.open("mem0", backend="sim") as dev:
        first = dev.commands()
        assert dev.commands() is first
    assert len(calls) == 1
    assert any(c.enabled for c in first)


def test_one_backend_per_name_and_instances_pass_through() -> None:
    assert cxlctl.backend("sim") is cxlctl.backend("simulator")
    mine = SimBackend([SimDevice("mem7")])
    assert cxlctl.backend(mine) is mine
    assert [m.memdev for m in cxlctl.list_memdevs(backend=mine)] == ["mem7"]


def test_errors_are_the_cli_classes() -> None:
    with pytest.raises(cxlctl.DeviceNotFound) as e:
        cxlctl.open("mem42", backend="sim")
    assert e.value.exit_code == cxlctl.ExitCode.NOT_FOUND
    with pytest.raises(cxlctl.UsageError):
        cxlctl.list_memdevs(["disk0"], backend="sim")
    with cxlctl.open("mem0", backend="sim") as dev, pytest.raises(cxlctl.CxlError):
        dev.raw(0x4000)  # the simulated kernel has no RAW commands by default
    with pytest.raises(AttributeError):
        _ = cxlctl.no_such_name


def test_every_public_name_and_method_is_documented_and_in_help() -> None:
    text = pydoc.plain(pydoc.render_doc(cxlctl))
    for name in ("open(", "list_memdevs(", "backend(", "class Device"):
        assert name in text
    for name in cxlctl.__all__:
        obj = getattr(cxlctl, name)
        assert inspect.getdoc(obj), name
    for name, member in inspect.getmembers(api.Device):
        if not name.startswith("_") and (callable(member) or isinstance(member, property)):
            assert inspect.getdoc(member), f"Device.{name} has no docstring"


def test_readme_python_examples_run() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert any("cxlctl.open(" in b for b in blocks)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
