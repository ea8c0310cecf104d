"""``python -m cxlctl`` and the ``cxlctl`` console script.

Kept free of imports until it runs: Ctrl-C while Python loads click, rich and the
command modules ends with exit 130 and no traceback, like Ctrl-C anywhere else.
"""

from __future__ import annotations


def main() -> None:
    import gc

    # Start-up allocates long-lived objects only (modules, classes, click's
    # parameters); the collector's full passes over them cost a --json run more
    # than its command does. cxlctl.cli resumes it (frozen) once the library is loaded.
    gc.disable()
    try:
        from .cli import run
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    run(gc_paused=True)


if __name__ == "__main__":
    main()
