"""`cxlctl list ARGS --cxl-compat` against cxl-cli 81's `cxl list ARGS` on the same
devices, for every invocation of the man-page corpus (tests/data/cxl-list-corpus.json,
also run on the simulator by tests/test_cxl_list_corpus.py): the two outputs must be
the same JSON document (shape, keys, types and values), except the one documented
difference of alert temperatures (test_kernel_cxl_list.UNSIGNED_IN_CXL_CLI). On the
7.3 stack cxl-cli is 85, which adds three keys that `--cxl-compat` (cxl-cli 81's
vocabulary) leaves out: exactly those are dropped from its output before comparing
(docs/kernel-stacks.md)."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from .conftest import REPO, STACK, cxl, cxlctl
from .test_kernel_cxl_list import UNSIGNED_IN_CXL_CLI

#: what cxl-cli 85 prints that cxl-cli 81 (and so --cxl-compat) does not
CXL_CLI_85_KEYS = frozenset(
    {"poison_injectable", "injectable_protocol_errors", "protocol_injectable"}
)

CORPUS = json.loads((REPO / "tests" / "data" / "cxl-list-corpus.json").read_text())["corpus"]


def _signed(doc: Any, path: str = "") -> Any:
    """cxl-cli's unsigned 16-bit alert temperatures as cxlctl's signed values."""
    if isinstance(doc, dict):
        return {k: _signed(v, f"{path}.{k}") for k, v in doc.items()}
    if isinstance(doc, list):
        return [_signed(v, path) for v in doc]
    key = ".".join(path.split(".")[-2:])
    if key in UNSIGNED_IN_CXL_CLI and isinstance(doc, int) and doc >= 1 << 15:
        return doc - (1 << 16)
    return doc


def _as_81(doc: Any) -> Any:
    """cxl-cli's output without the keys cxl-cli 81 does not have."""
    if STACK.cxl_cli == "81":
        return doc
    if isinstance(doc, dict):
        return {k: _as_81(v) for k, v in doc.items() if k not in CXL_CLI_85_KEYS}
    if isinstance(doc, list):
        return [_as_81(v) for v in doc]
    return doc


def _parse(text: str) -> Any:
    return json.loads(text) if text.strip() else None


@pytest.mark.parametrize("case", CORPUS, ids=[c["manpage"] for c in CORPUS])
def test_cxl_list_compat_equals_cxl_cli(case: dict[str, str]) -> None:
    args = shlex.split(case["args"])
    theirs = cxl("list", *args)
    mine = cxlctl("list", *args, "--cxl-compat")
    assert (mine.returncode, theirs.returncode) == (0, 0), (mine.stderr, theirs.stderr)
    assert _parse(mine.stdout) == _signed(_as_81(_parse(theirs.stdout))), case["manpage"]
