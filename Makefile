# Developer shortcuts; each target is one command you can also type yourself.
PYTHON ?= python

.PHONY: all lint type test test-fast goldens regen check-docs bench

all: lint type test

lint:
	ruff check .
	ruff format --check .

type:
	mypy

test:
	$(PYTHON) -m pytest -q

# the quick loop while editing: no wheel builds, no shells in a pseudo-terminal, no
# byte-for-byte regeneration of man/ and completions/ (the `slow` marker), no VM tier
test-fast:
	$(PYTHON) -m pytest -q -m "not slow and not kernel" --ignore=tests/kernel

# rewrite tests/golden/ from the current output, then show what changed: review the
# diff and commit only intended changes
goldens:
	CXLCTL_REGEN_GOLDEN=1 $(PYTHON) -m pytest -q -m "not slow and not kernel" --ignore=tests/kernel \
		tests/test_cli_admin.py tests/test_cli_core.py tests/test_cli_events.py \
		tests/test_cli_info.py tests/test_cli_media.py
	git status --short tests/golden

# completions/ and man/ from the click command tree (run after adding a command)
regen:
	$(PYTHON) tools/gen_docs.py

check-docs:
	$(PYTHON) tools/gen_docs.py --check

bench:
	$(PYTHON) benchmarks/run.py
