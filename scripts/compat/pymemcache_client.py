#!/usr/bin/env python3
"""What users of pymemcache do, against one server. Usage: pymemcache_client.py PORT"""
import sys
import time

from pymemcache import serde
from pymemcache.client.base import Client

from check import check, done, expect

addr = ("127.0.0.1", int(sys.argv[1]))
mc = Client(addr, serde=serde.pickle_serde, connect_timeout=5, timeout=5)


@check("pymemcache: health check set/get/delete")
def _():
    expect(mc.set("health:probe", "ok", noreply=False), "set returned false")
    expect(mc.get("health:probe") == "ok", "get did not return the value")
    expect(mc.delete("health:probe", noreply=False), "delete returned false")
    expect(mc.get("health:probe") is None, "value still there after delete")


@check("pymemcache: dict with a TTL (pickle serde), gone after the TTL")
def _():
    d = {"user": "ada", "roles": ["admin", "dev"], "n": 42, "nested": {"x": 1.5}}
    expect(mc.set("session:1", d, expire=2, noreply=False), "set returned false")
    got = mc.get("session:1")
    expect(got == d, f"got {got!r}")
    time.sleep(3.1)
    expect(mc.get("session:1") is None, "still there after its TTL")


@check("pymemcache: delete")
def _():
    mc.set("del:1", "v", noreply=False)
    expect(mc.delete("del:1", noreply=False), "delete of a present key failed")
    expect(not mc.delete("del:1", noreply=False), "second delete should report not found")


@check("pymemcache: incr/decr counters")
def _():
    raw = Client(addr, connect_timeout=5, timeout=5)
    expect(raw.incr("ctr:missing", 1, noreply=False) is None, "incr of a missing key should be None")
    raw.set("ctr:1", "10", noreply=False)
    expect(raw.incr("ctr:1", 1, noreply=False) == 11, "incr by 1")
    expect(raw.incr("ctr:1", 100, noreply=False) == 111, "incr by 100")
    expect(raw.decr("ctr:1", 11, noreply=False) == 100, "decr by 11")
    expect(raw.decr("ctr:1", 1000, noreply=False) == 0, "decr stops at 0")
    expect(raw.get("ctr:1").strip() == b"0", f"stored {raw.get('ctr:1')!r}")


@check("pymemcache: set_many/get_many of 1000 keys")
def _():
    data = {f"multi:{i}": {"i": i, "s": "v" * (i % 13)} for i in range(1000)}
    failed = mc.set_many(data, noreply=False)
    expect(failed == [], f"set_many failed keys: {failed[:5]}")
    got = mc.get_many(list(data) + ["multi:missing"])
    expect(got == data, f"get_many returned {len(got)} entries")


@check("pymemcache: append/prepend")
def _():
    raw = Client(addr, connect_timeout=5, timeout=5)
    raw.set("app:1", "middle", noreply=False)
    expect(raw.append("app:1", "-end", noreply=False), "append failed")
    expect(raw.prepend("app:1", "start-", noreply=False), "prepend failed")
    expect(raw.get("app:1") == b"start-middle-end", f"got {raw.get('app:1')!r}")


@check("pymemcache: gets/cas")
def _():
    mc.set("cas:1", "v1", noreply=False)
    value, token = mc.gets("cas:1")
    expect(value == "v1" and token, f"gets returned {value!r}, {token!r}")
    expect(mc.cas("cas:1", "v2", token, noreply=False) is True, "cas with a fresh unique must store")
    expect(mc.cas("cas:1", "v3", token, noreply=False) is False, "cas with a stale unique must fail")
    expect(mc.get("cas:1") == "v2", "value after cas")
    expect(mc.cas("cas:missing", "x", b"1", noreply=False) is None, "cas on a missing key is None")


@check("pymemcache: version, stats, touch")
def _():
    v = mc.version()
    expect(v.startswith(b"1.6."), f"version {v!r}")
    st = mc.stats()
    expect(b"curr_items" in st and st[b"threads"] >= 1, f"stats {st!r:.200}")
    mc.set("touch:1", "t", expire=1, noreply=False)
    expect(mc.touch("touch:1", 100, noreply=False), "touch")
    time.sleep(2.1)
    expect(mc.get("touch:1") == "t", "touch did not extend the TTL")


done()
