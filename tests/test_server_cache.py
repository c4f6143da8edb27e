"""The worker's cache of finished lists: what is kept, what a change drops, and the guard
against keeping a list computed from events older than an announced change."""

from __future__ import annotations

import time

from podrec.server.cache import CachedResponse, KeyCache, ResponseCache


def body(text: str) -> CachedResponse:
    return CachedResponse(text.encode(), 1)


ENTRY = 201  # bytes one of these bodies counts for: its length and 200 of bookkeeping


def test_a_kept_list_is_returned_until_it_expires():
    cache = ResponseCache(size=10 * ENTRY, seconds=0.2)
    cache.put(("recommendations", "ann", 1), body("a"), listener="ann")
    assert cache.get(("recommendations", "ann", 1)).body == b"a"
    assert cache.get(("recommendations", "ann", 2)) is None  # another version: another key
    time.sleep(0.25)
    assert cache.get(("recommendations", "ann", 1)) is None
    assert (cache.hits, cache.misses) == (1, 2)


def test_size_zero_keeps_nothing():
    cache = ResponseCache(size=0, seconds=300)
    assert not cache.put("k", body("a"))
    assert cache.get("k") is None and len(cache) == 0


def test_least_recently_used_lists_go_first_and_size_counts_bytes():
    cache = ResponseCache(size=2 * ENTRY, seconds=300)
    cache.put("a", body("a"))
    cache.put("b", body("b"))
    assert cache.get("a") is not None
    cache.put("c", body("c"))
    assert cache.get("b") is None and cache.get("a") is not None
    assert not cache.put("big", body("x" * 1000))  # larger than the whole cache: not kept
    assert cache.get("a") is not None


def test_forget_drops_a_listener_and_the_rest_of_their_person():
    cache = ResponseCache(size=100 * ENTRY, seconds=300)
    cache.put("ann-1", body("1"), listener="ann", person="p1")
    cache.put("ann-2", body("2"), listener="ann", person="p1")
    cache.put("ann-car", body("3"), listener="ann-car", person="p1")
    cache.put("bob", body("4"), listener="bob")
    assert cache.forget("ann") == 2  # only ann's own lists without the person
    assert cache.get("ann-car") is not None
    assert cache.forget("ann-phone", person="p1") == 1  # an event of another account of p1
    assert cache.get("ann-car") is None and cache.get("bob") is not None


def test_a_change_announced_while_computing_keeps_the_list_out():
    cache = ResponseCache(size=100 * ENTRY, seconds=300)
    stamp = cache.stamp("ann", "p1")
    cache.forget("ann-phone", person="p1")  # arrives while ann's list is computed
    assert not cache.put("ann", body("old"), stamp, listener="ann", person="p1")
    assert cache.get("ann") is None
    stamp = cache.stamp("ann", "p1")
    cache.forget("bob")  # someone else (unless their bucket collides): no effect on ann
    kept = cache.put("ann", body("new"), stamp, listener="ann", person="p1")
    assert kept == (hash("bob") % cache.BUCKETS not in
                    {hash("ann") % cache.BUCKETS, hash("p1") % cache.BUCKETS})
    stamp = cache.stamp("ann")
    cache.clear()  # a reconnection: everything computed before it is suspect
    assert not cache.put("ann", body("x"), stamp, listener="ann")


def test_the_listener_index_stays_bounded():
    cache = ResponseCache(size=5 * ENTRY, seconds=300)
    for i in range(5000):
        cache.put(f"k{i:04}", body("x"), listener=f"user{i}", person=f"p{i % 3}")
    assert len(cache) == 5
    assert len(cache._by_listener) <= 2 * 5 + 1000 + 1 and len(cache._by_person) <= 3
    assert cache.forget("user4999") == 1 and cache.get("k4999") is None


def test_checked_keys_are_trusted_for_a_while_only():
    keys = KeyCache(seconds=0.2)
    assert keys.get("podrec_x_y") == (False, None)
    keys.put("podrec_x_y", "client")
    assert keys.get("podrec_x_y") == (True, "client")
    time.sleep(0.25)
    assert keys.get("podrec_x_y") == (False, None)
    never = KeyCache(seconds=0)
    never.put("podrec_x_y", "admin")
    assert never.get("podrec_x_y") == (False, None)
