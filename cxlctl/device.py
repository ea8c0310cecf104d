"""Compatibility: the library API moved to :mod:`cxlctl.backends` (where memdevs
come from) and :mod:`cxlctl.memdev` (one memdev's typed commands)."""

from .backends import (
    Backend,
    KernelBackend,
    MemdevInfo,
    SimBackend,
    memdev_name,
    open_backend,
)
from .memdev import Memdev, check_retval

__all__ = [
    "Backend",
    "KernelBackend",
    "Memdev",
    "MemdevInfo",
    "SimBackend",
    "check_retval",
    "memdev_name",
    "open_backend",
]
