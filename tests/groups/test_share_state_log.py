"""Keys, settings and dead-letter headers of ``__share_group_state`` (sans-I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logbroker.errors import InvalidConfigError
from logbroker.groups.share_partition import DeadLetter
from logbroker.groups.share_state_log import (ShareGroupConfig, config_key, dead_letter_headers, dead_letter_source,
                                              decode_key, state_key)

names = st.text(min_size=1, max_size=40)


@given(names, names, names, st.integers(0, 2**31 - 1))
def test_state_keys_round_trip(group, topic, topic_id, partition):
    assert decode_key(state_key(group, topic, topic_id, partition)) == ("state", group, topic, topic_id, partition)


@given(names)
def test_config_keys_round_trip(group):
    assert decode_key(config_key(group)) == ("config", group)


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\x00\x02\x00\x05ab", config_key("g") + b"x", b"\x00\x07\x00\x01g",
                                 state_key("g", "t", "id", 0)[:-1]])
def test_malformed_keys_are_refused(bad):
    with pytest.raises(ValueError):
        decode_key(bad)


def test_settings_round_trip_and_are_checked():
    overrides = {"lock_duration_ms": 1000, "dead_letter_topic": "dlq"}
    assert ShareGroupConfig.decode_overrides(ShareGroupConfig.encode_overrides(overrides)) == overrides
    assert ShareGroupConfig.decode_overrides(b'{"from_the_future": 1, "delivery_count_limit": 3}') == \
        {"delivery_count_limit": 3}
    with pytest.raises(ValueError):
        ShareGroupConfig.decode_overrides(b"[1]")
    for bad in (ShareGroupConfig(lock_duration_ms=0), ShareGroupConfig(delivery_count_limit=101),
                ShareGroupConfig(auto_offset_reset="middle")):
        with pytest.raises(InvalidConfigError):
            bad.check()


def test_dead_letter_headers_name_their_source():
    headers = dead_letter_headers("g", "orders", 3, DeadLetter(42, 5, "delivery_count_limit"))
    assert dict(headers)["logbroker.dlq.reason"] == b"delivery_count_limit"
    assert dict(headers)["logbroker.dlq.delivery.count"] == b"5"
    assert dead_letter_source([("x", b"1")] + headers) == ("g", "orders", 3, 42)
    assert dead_letter_source([("logbroker.dlq.group", b"g")]) is None
