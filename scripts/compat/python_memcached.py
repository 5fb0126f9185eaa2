#!/usr/bin/env python3
"""What users of python-memcached (`import memcache`) do, against one server.
Usage: python_memcached.py PORT"""
import sys
import time

import memcache

from check import check, done, expect

server = f"127.0.0.1:{sys.argv[1]}"
mc = memcache.Client([server])


@check("python-memcached: health check set/get/delete")
def _():
    expect(mc.set("health:probe", "ok"), "set returned false")
    expect(mc.get("health:probe") == "ok", "get did not return the value")
    expect(mc.delete("health:probe"), "delete returned false")
    expect(mc.get("health:probe") is None, "value still there after delete")


@check("python-memcached: dict with a TTL, gone after the TTL")
def _():
    d = {"user": "ada", "roles": ["admin", "dev"], "n": 42, "nested": {"x": 1.5}}
    expect(mc.set("session:1", d, time=2), "set returned false")
    got = mc.get("session:1")
    expect(got == d, f"got {got!r}")
    time.sleep(3.1)
    expect(mc.get("session:1") is None, "still there after its TTL")


@check("python-memcached: delete")
def _():
    mc.set("del:1", "v")
    expect(mc.delete("del:1") != 0, "delete of a present key failed")
    expect(mc.get("del:1") is None, "value still there")


@check("python-memcached: incr/decr counters")
def _():
    expect(mc.incr("ctr:missing") is None, "incr of a missing key should be None")
    mc.set("ctr:1", 10)
    expect(mc.incr("ctr:1") == 11, "incr by 1")
    expect(mc.incr("ctr:1", 100) == 111, "incr by 100")
    expect(mc.decr("ctr:1", 11) == 100, "decr by 11")
    expect(mc.decr("ctr:1", 1000) == 0, "decr stops at 0")
    expect(int(mc.get("ctr:1")) == 0, f"stored {mc.get('ctr:1')!r}")


@check("python-memcached: set_multi/get_multi of 1000 keys")
def _():
    data = {f"multi:{i}": f"value-{i}" * (i % 7 + 1) for i in range(1000)}
    failed = mc.set_multi(data)
    expect(failed == [], f"set_multi failed keys: {failed[:5]}")
    got = mc.get_multi(list(data) + ["multi:missing"])
    expect(got == data, f"get_multi returned {len(got)} of 1000 right")


@check("python-memcached: append/prepend")
def _():
    mc.set("app:1", "middle")
    expect(mc.append("app:1", "-end"), "append failed")
    expect(mc.prepend("app:1", "start-"), "prepend failed")
    expect(mc.get("app:1") == "start-middle-end", f"got {mc.get('app:1')!r}")
    expect(not mc.append("app:missing", "x"), "append to a missing key must fail")


@check("python-memcached: gets/cas")
def _():
    a = memcache.Client([server], cache_cas=True)
    b = memcache.Client([server])
    a.set("cas:1", "v1")
    expect(a.gets("cas:1") == "v1", "gets")
    expect(a.cas("cas:1", "v2"), "cas with a fresh unique must store")
    expect(b.get("cas:1") == "v2", "value after cas")
    expect(a.gets("cas:1") == "v2", "gets again")
    b.set("cas:1", "other")
    expect(not a.cas("cas:1", "v3"), "cas with a stale unique must fail")
    expect(b.get("cas:1") == "other", "stale cas changed the value")


@check("python-memcached: large value and stats")
def _():
    big = "x" * 500_000
    expect(mc.set("big:1", big), "set of 500 kB")
    expect(mc.get("big:1") == big, "get of 500 kB")
    stats = mc.get_stats()
    expect(len(stats) == 1 and "curr_items" in stats[0][1], f"stats {stats!r:.200}")


done()
