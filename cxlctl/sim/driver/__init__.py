"""The simulated kernel: what Linux's cxl driver does between userspace and the device.

* :mod:`.mbox` -- ``drivers/cxl/core/mbox.c``: QUERY/SEND validation (:class:`SimDriver`).
* :mod:`.tracefs` -- what Linux runs itself and reports through tracefs/debugfs.

Nothing here is the real kernel: the real one is reached through
:mod:`cxlctl.transport` and :class:`cxlctl.backends.KernelBackend`.
"""
