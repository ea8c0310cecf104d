"""The atheris fuzz target (tools/fuzz/fuzz_decoders.py) on its committed corpus,
without atheris: every seed ends in a value, DecodeError or an errno, and the
corpus has a seed for every decoder, SEND and QUERY (so a new decoder is fuzzed
from a real payload: rerun tools/fuzz/make_corpus.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "tools" / "fuzz"
sys.path.insert(0, str(FUZZ))

import fuzz_decoders  # noqa: E402

SEEDS = sorted((FUZZ / "corpus").iterdir())


def test_the_corpus_seeds_every_target() -> None:
    firsts = {p.read_bytes()[:1] for p in SEEDS}
    want = {bytes([i]) for i in range(fuzz_decoders.QUERY + 1)}
    assert want <= firsts, sorted(want - firsts)


@pytest.mark.parametrize("seed", SEEDS, ids=[p.name[:12] for p in SEEDS])
def test_every_seed_ends_clean(seed: Path) -> None:
    fuzz_decoders.one_input(seed.read_bytes())  # raises on anything undocumented


def test_odd_inputs_end_clean() -> None:
    for data in (b"", b"\xff", bytes([fuzz_decoders.SEND]), bytes([fuzz_decoders.QUERY])):
        fuzz_decoders.one_input(data)
