"""``python -m cxlctl`` and the ``cxlctl`` console script.

Kept free of imports until it runs: Ctrl-C while Python loads click, rich and the
command modules ends with exit 130 and no traceback, like Ctrl-C anywhere else.
"""

from __future__ import annotations


def main() -> None:
    try:
        from .cli import run
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    run()


if __name__ == "__main__":
    main()
