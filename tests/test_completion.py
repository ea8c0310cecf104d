"""Completion candidates, in process: click's completion machinery over the real
command tree with the shell_complete callbacks of cxlctl.cli.complete."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.shell_completion import ShellComplete

from cxlctl import mailbox as mb
from cxlctl.backends import KernelBackend
from cxlctl.cli import complete, main


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith("CXLCTL_"):
            monkeypatch.delenv(var)


def candidates(*words: str) -> list[str]:
    """Values click offers for the last word of ``cxlctl WORDS``."""
    *args, incomplete = words
    comp = ShellComplete(main, {}, "cxlctl", "_CXLCTL_COMPLETE")
    return [str(c.value) for c in comp.get_completions(list(args), incomplete)]


def test_memdevs_from_sim_flag() -> None:
    assert candidates("--sim", "identify", "m") == ["mem0", "mem1", "mem2"]


def test_memdevs_from_backend_option_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert candidates("--backend", "sim", "list", "") == ["mem0", "mem1", "mem2"]
    monkeypatch.setenv("CXLCTL_BACKEND", "sim")
    monkeypatch.setenv("CXLCTL_SIM_DEVICES", "ram,pmem")
    assert candidates("query", "mem") == ["mem0", "mem1"]


def test_memdevs_from_kernel_sysfs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for d in ("mem0", "mem10", "mem3", "port1", "decoder0.0"):
        (tmp_path / d).mkdir()
    monkeypatch.setattr(KernelBackend.__init__, "__defaults__", (str(tmp_path), str(tmp_path)))
    assert candidates("identify", "") == ["mem0", "mem3", "mem10"]
    assert candidates("--backend", "kernel", "send", "mem1") == ["mem10"]


def test_memdevs_already_given_are_not_offered_again() -> None:
    assert candidates("--sim", "identify", "mem0", "mem2", "") == ["mem1"]


def test_memdev_device_paths() -> None:
    assert candidates("--sim", "list", "/dev/cxl/mem1") == ["/dev/cxl/mem1"]


def test_send_offers_kernel_commands_and_aliases() -> None:
    got = candidates("--sim", "send", "mem0", "")
    names = {c.name for c in mb.CATALOGUE if c.kernel_id is not None}
    assert names <= set(got)
    assert "health" in got  # alias
    no_id = [c.name for c in mb.CATALOGUE if c.kernel_id is None]
    assert not set(no_id) & set(got)
    assert candidates("--sim", "send", "mem0", "get-fw") == ["get-fw-info"]


def test_catalogue_commands_include_those_without_a_kernel_id() -> None:
    ctx = click.Context(main)
    param = click.Argument(["command"])
    got = {str(c.value) for c in complete.catalogue_commands(ctx, param, "")}
    assert {c.name for c in mb.CATALOGUE} | set(mb.ALIASES) == got


def test_raw_offers_opcodes() -> None:
    assert candidates("--sim", "raw", "mem0", "0x400") == ["0x4000"]


def test_log_uuids_by_prefix_or_name() -> None:
    ctx = click.Context(main)
    param = click.Option(["--log"])
    assert [c.value for c in complete.logs(ctx, param, "0da9")] == [mb.CEL_UUID]
    assert [c.value for c in complete.logs(ctx, param, "ce")] == ["cel"]
    assert [c.value for c in complete.logs(ctx, param, "effects")] == [mb.CEL_UUID]
    assert len(complete.logs(ctx, param, "")) == len(mb.KNOWN_LOGS) + len(mb.LOG_ALIASES)
    assert complete.logs(ctx, param, "zzz") == []


def test_other_commands_use_the_callbacks() -> None:
    assert candidates("--sim", "get-log", "mem0", "vendor") == ["vendor-debug"]
    assert candidates("--sim", "get-log", "cel", "mem2") == ["mem2"]
    assert candidates("decode", "partition") == ["partition", "partition-info"]
    assert "get-event-records" in candidates("decode", "get-ev")  # no kernel id needed
    assert candidates("--sim", "read-labels", "mem") == ["mem0", "mem1", "mem2"]


def test_choices_and_subcommands() -> None:
    assert candidates("--sim", "identify", "-o", "") == ["table", "wide", "plain", "json", "jsonl"]
    assert candidates("--backend", "") == ["kernel", "sim"]
    assert "completion" in candidates("")
    assert candidates("completion", "") == ["bash", "zsh", "fish"]


def test_errors_mean_no_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXLCTL_SIM_DEVICES", "bogus")  # the backend refuses to open
    assert candidates("--sim", "identify", "") == []

    def boom(name: str | None = None) -> None:
        raise RuntimeError("no")

    monkeypatch.setattr("cxlctl.backends.open_backend", boom)
    assert candidates("identify", "") == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_console_script_never_prints_a_traceback(shell: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXLCTL_")}
    env.update(
        _CXLCTL_COMPLETE=f"{shell}_complete",
        COMP_WORDS="cxlctl --sim identify ",
        COMP_CWORD="2" if shell != "fish" else "",
        CXLCTL_SIM_DEVICES="bogus",
    )
    p = subprocess.run(
        [sys.executable, "-m", "cxlctl"], env=env, capture_output=True, text=True, timeout=30
    )
    assert p.returncode == 0
    assert p.stderr == ""
    assert "mem" not in p.stdout


def test_fish_answers_one_line_per_candidate() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXLCTL_")}
    env.update(
        _CXLCTL_COMPLETE="fish_complete",
        COMP_WORDS="cxlctl --sim send mem0 get-fw",
        COMP_CWORD="get-fw",
    )
    p = subprocess.run(
        [sys.executable, "-m", "cxlctl"], env=env, capture_output=True, text=True, timeout=30
    )
    assert p.stdout.splitlines() == ["plain,get-fw-info\tGet FW Info"]
