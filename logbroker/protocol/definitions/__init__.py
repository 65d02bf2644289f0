"""The messages logbroker speaks, in the compact notation of ``schema.py``, keyed by API key.

Written by hand from the facts in ../shared/kafka/ (the JSON schemas are reference, not loaded).
Each API is defined for every version of those reference schemas, a superset of what the broker
advertises (``codec.SUPPORTED``): the codec is generic over versions, so widening what is served is
a change to the advertised table and to the server, not to these definitions.
"""

from __future__ import annotations

from ..schema import Api
from . import admin, core, fetch, groups, produce, share

__all__ = ["APIS"]

APIS: dict[int, Api] = {api.key: api for module in (core, produce, fetch, groups, admin, share) for api in module.APIS}
