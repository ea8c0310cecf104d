"""cxlctl: administer Linux CXL memory devices, or a faithful simulation of one.

The library in three calls::

    import cxlctl

    for m in cxlctl.list_memdevs(backend="sim"):      # what sysfs says, as cxl list -M
        print(m.memdev, m.serial, m.pmem_size)

    with cxlctl.open("mem0", backend="sim") as dev:   # backend: "kernel" (default) or "sim"
        print(dev.health().temperature, dev.identify().firmware_version)

:func:`open` returns a :class:`Device` (typed commands: ``identify``, ``health``,
``partition_info``, ``fw_info``, ``alert_config``, ``shutdown_state``,
``timestamp``, ``supported_logs``, ``log_caps``, ``get_log``, ``read_labels``,
``send``, ``raw``, ``commands``); failures are :class:`CxlError` subclasses.
Importing this package is cheap: the names below are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "open": "api",
    "list_memdevs": "api",
    "backend": "api",
    "Device": "api",
    "MemdevInfo": "backends",
    "CxlError": "errors",
    "DeviceNotFound": "errors",
    "PermissionDenied": "errors",
    "UnsupportedCommand": "errors",
    "DeviceBusy": "errors",
    "InvalidRequest": "errors",
    "MailboxError": "errors",
    "DecodeError": "errors",
    "UsageError": "errors",
    "ExitCode": "errors",
}

__all__ = [
    "CxlError",
    "DecodeError",
    "Device",
    "DeviceBusy",
    "DeviceNotFound",
    "ExitCode",
    "InvalidRequest",
    "MailboxError",
    "MemdevInfo",
    "PermissionDenied",
    "UnsupportedCommand",
    "UsageError",
    "backend",
    "list_memdevs",
    "open",
]
assert sorted(__all__) == sorted(_LAZY)

if TYPE_CHECKING:
    from .api import Device, backend, list_memdevs, open
    from .backends import MemdevInfo
    from .errors import (
        CxlError,
        DecodeError,
        DeviceBusy,
        DeviceNotFound,
        ExitCode,
        InvalidRequest,
        MailboxError,
        PermissionDenied,
        UnsupportedCommand,
        UsageError,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cxlctl' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
