"""cxlctl: administer Linux CXL memory devices, or a faithful simulation of one."""

__version__ = "0.1.0"
