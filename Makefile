# Developer shortcuts; each target is one command you can also type yourself.
PYTHON ?= python

.PHONY: all lint type test regen check-docs bench

all: lint type test

lint:
	ruff check .
	ruff format --check .

type:
	mypy

test:
	$(PYTHON) -m pytest -q

# completions/ and man/ from the click command tree (run after adding a command)
regen:
	$(PYTHON) tools/gen_docs.py

check-docs:
	$(PYTHON) tools/gen_docs.py --check

bench:
	$(PYTHON) benchmarks/startup.py
