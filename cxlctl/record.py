"""Immutable value records that cost nothing to define.

A ``@dataclass(frozen=True, slots=True)`` generates and compiles five methods and
builds its class twice when the module is imported (about 1 ms per class on a
2-core machine); a start-up of ~50 ms cannot carry a dozen of them. A
:class:`Record` reads its fields from the class annotations, gets ``__slots__``
from them, and compiles its ``__init__`` only when the first instance is built.
It behaves like the frozen dataclass it replaces: keyword or positional
construction with defaults, no assignment after ``__init__``, ``==``, ``hash``,
``repr``, and :func:`fields` / :func:`as_dict` for rendering. Type checkers see
a frozen dataclass (PEP 681).

    class Slot(Record):
        slot: int
        version: str = ""

This module imports nothing of ours.
"""

from __future__ import annotations

from types import MemberDescriptorType
from typing import Any, ClassVar, dataclass_transform

_MISSING = object()


@dataclass_transform(frozen_default=True)
class _RecordMeta(type):
    def __new__(
        mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kw: Any
    ) -> _RecordMeta:
        own = [
            f
            for f, ann in ns.get("__annotations__", {}).items()
            if not str(ann).startswith(("ClassVar", "typing.ClassVar"))
        ]
        defaults: dict[str, Any] = {}
        for base in reversed(bases):
            defaults.update(getattr(base, "_defaults", {}))
        for f in own:
            if f in ns:
                defaults[f] = ns.pop(f)
        inherited: tuple[str, ...] = ()
        for base in bases:
            inherited += getattr(base, "_fields", ())
        ns["__slots__"] = tuple(own)
        ns.setdefault("__init__", _lazy_init)  # each class compiles its own
        ns["_fields"] = inherited + tuple(own)
        ns["_defaults"] = defaults
        cls = super().__new__(mcls, name, bases, ns, **kw)
        return cls


_set = object.__setattr__


def _lazy_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """The first instance of a record class compiles its real ``__init__``."""
    cls = type(self)
    init = _compile_init(cls)
    type.__setattr__(cls, "__init__", init)
    init(self, *args, **kwargs)


class Record(metaclass=_RecordMeta):
    """Base of immutable slotted records (see the module docstring)."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of {type(self).__name__}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.__class__, self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"

    def __copy__(self) -> Record:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Record:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._values())


def _compile_init(cls: type) -> Any:
    fields: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]
    defaults: dict[str, Any] = cls._defaults  # type: ignore[attr-defined]
    params = []
    for f in fields:
        params.append(f"{f}=_d_{f}" if f in defaults else f)
    env: dict[str, Any] = {"_set": _set, **{f"_d_{k}": v for k, v in defaults.items()}}
    lines = []
    for f in fields:
        # the slot's own setter, bound once: a third cheaper than object.__setattr__
        # (a decode builds a record per call; Identify has 18 fields)
        slot = next((k.__dict__[f] for k in cls.__mro__ if f in k.__dict__), None)
        if isinstance(slot, MemberDescriptorType):
            env[f"_s_{f}"] = slot.__set__
            lines.append(f"    _s_{f}(self, {f})\n")
        else:
            lines.append(f"    _set(self, {f!r}, {f})\n")
    body = "".join(lines) or "    pass\n"
    post = "    self.__post_init__()\n" if hasattr(cls, "__post_init__") else ""
    src = f"def __init__(self, {', '.join(params)}):\n{body}{post}"
    exec(src, env)
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def fields(obj: Record | type[Record]) -> tuple[str, ...]:
    """The field names of a record (class or instance), in definition order."""
    return obj._fields


def as_dict(obj: Record) -> dict[str, Any]:
    """``{field: value}`` of a record, in definition order (not recursive)."""
    return {f: getattr(obj, f) for f in obj._fields}
