"""Hypothesis strategies for message bodies, derived from logbroker's own definitions.

``body(api_key, kind, version)`` draws a dict holding every field of that version, tagged fields
included, with values of the right type and range (nulls only where the version allows them).
``ALL_MESSAGES`` lists every defined (api key, kind, version); ``examples`` sizes a run so that the
versions the broker advertises get many examples and the others a few.
"""

from __future__ import annotations

import functools

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from logbroker.protocol import SUPPORTED
from logbroker.protocol.definitions import APIS
from logbroker.protocol.schema import Array, Struct

ALL_MESSAGES = [(key, kind, v) for key, api in sorted(APIS.items()) for v in api.versions()
                for kind in ("request", "response")]



def examples(api_key: int, version: int, advertised: int = 20, other: int = 5) -> settings:
    """Hypothesis settings: many examples for versions the broker advertises, a few for the rest."""
    lo, hi = SUPPORTED.get(api_key, (0, -1))
    n = advertised if lo <= version <= hi else other
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])


_INTS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
_UINTS = {"uint16": 16, "uint32": 32}
_SHORT = {"max_size": 3}

_text = st.text(max_size=12)
_primitive = {
    "bool": st.booleans(),
    "uuid": st.uuids() | st.just(__import__("uuid").UUID(int=0)),
    "string": _text,
    "bytes": st.binary(max_size=24),
    "records": st.binary(max_size=64),
    "float64": st.floats(allow_nan=False),
    **{t: st.integers(-(1 << (b - 1)), (1 << (b - 1)) - 1) for t, b in _INTS.items()},
    **{t: st.integers(0, (1 << b) - 1) for t, b in _UINTS.items()},
}


def _type(t, version: int) -> st.SearchStrategy:
    if isinstance(t, Array):
        return st.lists(struct(tuple(t), version), **_SHORT)
    if isinstance(t, Struct):
        return struct(tuple(t), version)
    if t.startswith("[]"):
        return st.lists(_primitive[t[2:]], **_SHORT)
    return _primitive[t]


def struct(fields, version: int) -> st.SearchStrategy:
    parts = {}
    for f in fields:
        if not f.present(version):
            continue
        s = _type(f.type, version)
        parts[f.name] = st.none() | s if f.nullable(version) else s
    return st.fixed_dictionaries(parts)


@functools.cache
def body(api_key: int, kind: str, version: int) -> st.SearchStrategy:
    return struct(getattr(APIS[api_key], kind), version)


def project(fields, version: int, value: dict) -> dict:
    """``value`` restricted to the fields of ``version`` (recursively), for cross-version comparisons."""
    out = {}
    for f in fields:
        if not f.present(version) or f.name not in value:
            continue
        v = value[f.name]
        if isinstance(f.type, Array) and v is not None:
            v = [project(tuple(f.type), version, item) for item in v]
        elif isinstance(f.type, Struct) and v is not None:
            v = project(tuple(f.type), version, v)
        out[f.name] = v
    return out
