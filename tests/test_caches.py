"""``make_room``: the bound every token cache keeps, oldest entries first."""

from __future__ import annotations

import pytest

from asgi_wallet_auth.caches import make_room


def fill(size: int, count: int) -> dict[int, int]:
    cache: dict[int, int] = {}
    for key in range(count):
        if len(cache) >= size:
            make_room(cache, size)
        cache[key] = key
        assert len(cache) <= size
    return cache


@pytest.mark.parametrize("size", [1, 2, 7, 8, 9, 64, 4096])
def test_the_cache_never_outgrows_its_size_and_keeps_the_newest(size: int) -> None:
    cache = fill(size, 5 * size + 3)
    keys = list(cache)
    assert keys == sorted(keys)  # insertion order kept: the oldest went first
    assert keys[-1] == 5 * size + 2  # the newest is always there
    # At most an eighth (and at least one entry) below the bound, never above it.
    assert size - max(1, size // 8) < len(cache) <= size


def test_an_eighth_goes_at_once_so_the_next_inserts_evict_nothing() -> None:
    cache = {key: key for key in range(64)}
    make_room(cache, 64)
    assert list(cache) == list(range(8, 64))


def test_a_cache_over_its_size_is_brought_back_under_it() -> None:
    cache = {key: key for key in range(100)}  # a size lowered after the fact
    make_room(cache, 16)
    assert list(cache) == list(range(85, 100))  # room for exactly one more
