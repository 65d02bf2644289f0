"""The compact language the message definitions are written in (DESIGN.md decision 9).

A message is a tuple of ``Field``s.  A field has a snake_case name, a type and the versions it exists
in; optionally the versions in which it may be null, a tag (it then travels in the tagged-field
section of flexible versions), and a default.  Types are:

* a primitive name: ``bool int8 int16 int32 int64 uint16 uint32 float64 uuid string bytes records``
* ``"[]T"`` for an array of a primitive, e.g. ``"[]int32"``, ``"[]string"``
* ``Struct(Field, ...)`` for a nested struct, ``Array(Field, ...)`` for an array of structs.  A struct
  with ``nullable_versions`` travels behind an INT8 marker (-1 null, 1 present), as Kafka encodes
  ShareGroupHeartbeat's ``assignment``.

Versions are written as in Kafka's schemas: ``"0+"``, ``"3-7"``, ``"5"``, ``"none"``.

Names follow one rule: Kafka's PascalCase field name in snake_case, an underscore before every capital
but the first, then lower case (``PartitionIndex`` -> ``partition_index``, ``ErrorCode`` ->
``error_code``, ``ThrottleTimeMs`` -> ``throttle_time_ms``, CreateTopics' ``timeoutMs`` -> ``timeout_ms``).
So the Produce request's topics are ``topic_data`` and its partitions ``partition_data`` with ``index``
and ``records``, exactly as Kafka (and kafka-python) name them.

Defaults are what a decoder fills in for an absent tagged field and what an encoder writes for a key
missing from the body: ``None`` where the field is nullable in that version, otherwise 0, ``False``,
``""``, ``b""``, ``[]``, the zero UUID or a struct of defaults -- unless the field names its own
default, as Kafka's schemas do (-1 for most offsets and ids, ``True`` for Metadata's
allow_auto_topic_creation).  A ``None`` default in a version where the field is not nullable falls
back to the type's zero.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ANY", "MISSING", "Api", "Array", "Field", "Struct", "parse_versions", "snake_case", "zero_value"]

ANY = (0, 0x7FFF)
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()

PRIMITIVES = frozenset(
    {"bool", "int8", "int16", "int32", "int64", "uint16", "uint32", "float64", "uuid", "string", "bytes", "records"})
_ZERO = {"bool": False, "int8": 0, "int16": 0, "int32": 0, "int64": 0, "uint16": 0, "uint32": 0, "float64": 0.0,
         "uuid": uuid.UUID(int=0), "string": "", "bytes": b"", "records": None}


def parse_versions(spec: str | None) -> tuple[int, int] | None:
    """``"0+"`` -> (0, 32767), ``"3-7"`` -> (3, 7), ``"5"`` -> (5, 5), ``"none"``/None -> None."""
    if spec is None or spec == "none":
        return None
    if spec.endswith("+"):
        return int(spec[:-1]), ANY[1]
    lo, _, hi = spec.partition("-")
    return int(lo), int(hi or lo)


def snake_case(name: str) -> str:
    """Kafka's PascalCase field name in the snake_case this package uses for dict keys."""
    return "".join(("_" + c.lower()) if c.isupper() and i else c.lower() for i, c in enumerate(name))


def _within(rng: tuple[int, int] | None, version: int) -> bool:
    return rng is not None and rng[0] <= version <= rng[1]


class Struct(tuple):
    """A struct type: a tuple of Fields."""

    def __new__(cls, *fields: Field):
        return super().__new__(cls, fields)

    def __repr__(self) -> str:
        return f"{type(self).__name__}{tuple.__repr__(self)}"


class Array(Struct):
    """An array of structs with these fields."""


@dataclass(frozen=True)
class Field:
    """One field of a message or struct; see the module docstring for the notation."""

    name: str
    type: Any
    versions: str = "0+"
    nullable_versions: str | None = None
    tag: int | None = None
    tagged_versions: str | None = None
    default: Any = MISSING
    flexible_versions: str | None = None  # "none": classic encoding even in flexible versions
    _ranges: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        t = self.type
        if not isinstance(t, Struct) and t not in PRIMITIVES and not (
                isinstance(t, str) and t.startswith("[]") and t[2:] in PRIMITIVES):
            raise ValueError(f"field {self.name}: unknown type {t!r}")
        tagged = self.tagged_versions if self.tagged_versions is not None else (
            self.versions if self.tag is not None else None)
        ranges = (parse_versions(self.versions), parse_versions(self.nullable_versions), parse_versions(tagged),
                  parse_versions(self.flexible_versions) if self.flexible_versions is not None else ANY)
        object.__setattr__(self, "_ranges", ranges)

    def present(self, version: int) -> bool:
        return _within(self._ranges[0], version)

    def nullable(self, version: int) -> bool:
        return _within(self._ranges[1], version)

    def tagged(self, version: int) -> bool:
        return self.tag is not None and _within(self._ranges[2], version)

    def compact(self, version: int, flexible: bool) -> bool:
        """Whether this field uses the compact encodings in a version whose message is ``flexible``."""
        return flexible and _within(self._ranges[3], version)

    def default_for(self, version: int) -> Any:
        """The default at ``version``, immutable (arrays as ``()``, structs as ``{}``)."""
        if self.default is not MISSING:
            if self.default is not None or self.nullable(version):
                return self.default
        elif self.nullable(version):
            return None
        return zero_value(self.type)


def zero_value(t) -> Any:
    if isinstance(t, Array) or (isinstance(t, str) and t.startswith("[]")):
        return ()
    if isinstance(t, Struct):
        return {}
    return _ZERO[t]


@dataclass(frozen=True)
class Api:
    """One API: its key, name, the versions defined here, the flexible ones, and both bodies."""

    key: int
    name: str
    valid_versions: str
    flexible_versions: str
    request: tuple
    response: tuple

    def versions(self) -> range:
        lo, hi = parse_versions(self.valid_versions)
        return range(lo, hi + 1)

    def is_flexible(self, version: int) -> bool:
        return _within(parse_versions(self.flexible_versions), version)
