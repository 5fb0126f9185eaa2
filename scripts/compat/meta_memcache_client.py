#!/usr/bin/env python3
"""What users of meta-memcache (PyPI; memcached's meta protocol only) do, against one
server: set/get/delete/touch, add/replace/append/prepend, counters with autovivify,
CAS, a lease won on a miss, stale-while-revalidate after a mark-stale delete, early
recache. Usage: meta_memcache_client.py PORT"""
import sys
import time

from meta_memcache import (
    CacheClient,
    LeasePolicy,
    RecachePolicy,
    ServerAddress,
    SetMode,
    StalePolicy,
    connection_pool_factory_builder,
)

from check import check, done, expect

PORT = int(sys.argv[1])


def client():
    return CacheClient.cache_client_from_servers(
        servers=[ServerAddress(host="127.0.0.1", port=PORT)],
        connection_pool_factory_fn=connection_pool_factory_builder(connection_timeout=5, recv_timeout=5),
    )


mc = client()
other = client()  # a second application instance


@check("meta-memcache: set/get/delete/touch")
def _():
    expect(mc.set("mm:k", {"a": 1, "b": [1, 2]}, ttl=60), "set returned false")
    expect(mc.get("mm:k") == {"a": 1, "b": [1, 2]}, f"get returned {mc.get('mm:k')!r}")
    expect(other.get("mm:k") == {"a": 1, "b": [1, 2]}, "another client sees the value")
    expect(mc.touch("mm:k", ttl=1), "touch of a present key")
    expect(not mc.touch("mm:missing", ttl=1), "touch of a missing key")
    time.sleep(2.1)
    expect(mc.get("mm:k") is None, "gone after the touched TTL")
    mc.set("mm:d", "v", ttl=0)
    expect(mc.delete("mm:d"), "delete of a present key")
    expect(not mc.delete("mm:d"), "delete of a missing key reports it")
    expect(mc.invalidate("mm:d"), "invalidate of a missing key is fine")
    expect(mc.get("mm:d") is None, "still there after delete")


@check("meta-memcache: unicode and binary keys (sent base64) and multi_get")
def _():
    keys = ["mm:ünï cødé", "mm:" + "x" * 300, "mm:plain"]
    for i, k in enumerate(keys):
        expect(mc.set(k, f"value{i}", ttl=60), f"set {k!r}")
    got = mc.multi_get(keys + ["mm:absent"])
    want = {f"value{i}" for i in range(3)}
    values = {v for v in got.values() if v is not None}
    expect(values == want, f"multi_get returned {got!r}")
    expect(other.get(keys[0]) == "value0", "another client reads the unicode key")


@check("meta-memcache: add/replace/append/prepend")
def _():
    mc.delete("mm:mode")
    expect(not mc.set("mm:mode", b"x", ttl=60, set_mode=SetMode.REPLACE), "replace of a missing key")
    expect(mc.set("mm:mode", b"hi", ttl=60, set_mode=SetMode.ADD), "add of a missing key")
    expect(not mc.set("mm:mode", b"no", ttl=60, set_mode=SetMode.ADD), "add of a present key")
    expect(mc.set("mm:mode", b"mid", ttl=60, set_mode=SetMode.REPLACE), "replace of a present key")
    expect(mc.set("mm:mode", b">", ttl=60, set_mode=SetMode.APPEND), "append")
    expect(mc.set("mm:mode", b"<", ttl=60, set_mode=SetMode.PREPEND), "prepend")
    expect(mc.get("mm:mode") == b"<mid>", f"got {mc.get('mm:mode')!r}")


@check("meta-memcache: counters with autovivify")
def _():
    mc.delete("mm:ctr")
    expect(mc.delta_and_get("mm:ctr", 1) is None, "delta of a missing counter")
    expect(not mc.delta("mm:ctr", 1), "delta of a missing counter reports it")
    expect(mc.delta_initialize_and_get("mm:ctr", 1, initial_value=10, initial_ttl=60) == 10, "vivified at 10")
    expect(mc.delta_initialize_and_get("mm:ctr", 5, initial_value=10, initial_ttl=60) == 15, "then +5")
    expect(mc.delta_and_get("mm:ctr", -20) == 0, "decrement stops at 0")
    expect(mc.delta("mm:ctr", 7), "delta")
    expect(other.delta_and_get("mm:ctr", 1) == 8, "another client's delta")


@check("meta-memcache: CAS")
def _():
    mc.set("mm:cas", "v1", ttl=60)
    value, cas = mc.get_cas("mm:cas")
    expect(value == "v1" and cas, f"get_cas returned {value!r}, {cas!r}")
    expect(other.set("mm:cas", "v2", ttl=60, cas_token=cas), "set with the current CAS")
    expect(not mc.set("mm:cas", "v3", ttl=60, cas_token=cas), "set with an old CAS fails")
    expect(mc.get("mm:cas") == "v2", "the old-CAS write did not land")
    new_cas = mc.set_cas("mm:cas", "v4", ttl=60)
    expect(new_cas and new_cas != cas, f"set_cas returned {new_cas!r}")
    expect(mc.get_cas("mm:cas") == ("v4", new_cas), "get_cas shows the CAS set_cas returned")
    expect(not mc.delete("mm:cas", cas_token=cas), "delete with an old CAS fails")
    expect(mc.delete("mm:cas", cas_token=new_cas), "delete with the current CAS")


@check("meta-memcache: a lease won on a miss")
def _():
    lease = LeasePolicy(ttl=30, miss_retries=3, miss_retry_wait=0.01)
    mc.delete("mm:lease")
    expect(mc.get_or_lease("mm:lease", lease) is None, "the first client wins the lease (a miss)")
    waits = []

    def winner_fills(seconds):
        waits.append(seconds)
        mc.set("mm:lease", "filled", ttl=60)

    got = other.get_or_lease("mm:lease", lease, lease_wait_fn=winner_fills)
    expect(waits, "the second client waited for the winner")
    expect(got == "filled", f"the second client got {got!r} after waiting")


@check("meta-memcache: stale-while-revalidate after a mark-stale delete")
def _():
    stale = StalePolicy(mark_stale_on_deletion_ttl=30)
    mc.set("mm:swr", "old", ttl=60)
    _, old_cas = mc.get_cas("mm:swr")
    expect(mc.delete("mm:swr", stale_policy=stale), "mark-stale delete")
    value, cas = mc.get_cas("mm:swr")
    expect(value is None and cas, "the first reader after the delete wins the recache (a miss)")
    expect(other.get("mm:swr") == "old", "other readers get the stale value meanwhile")
    expect(other.get("mm:swr") == "old", "still stale for them")
    # A late writer with the CAS from before the delete stores a stale value...
    late = StalePolicy(mark_stale_on_cas_mismatch=True)
    expect(other.set("mm:swr", "late", ttl=60, cas_token=old_cas, stale_policy=late), "stale write")
    expect(mc.get("mm:swr") == "late", "the stale write is visible to readers")
    # ...and the winner's write with the current CAS makes it fresh again.
    expect(mc.set("mm:swr", "new", ttl=60, cas_token=cas) is False, "the winner's CAS changed (stale write)")
    expect(mc.set("mm:swr", "new", ttl=60), "a plain set refreshes it")
    expect(mc.get("mm:swr") == "new" and other.get("mm:swr") == "new", "fresh for everyone")


@check("meta-memcache: early recache")
def _():
    recache = RecachePolicy(ttl=30)
    mc.set("mm:early", "v", ttl=10)
    expect(mc.get("mm:early", recache_policy=recache) is None, "the first reader below the recache TTL wins (a miss)")
    expect(other.get("mm:early", recache_policy=recache) == "v", "the others keep the value")
    mc.set("mm:early", "v2", ttl=100)
    expect(other.get("mm:early", recache_policy=recache) == "v2", "a TTL above the threshold: no recache")


done()
