"""pylibmc (libmemcached) in binary mode, as our users run it: objects with TTLs,
get_multi of 1000 keys (libmemcached sends GetKQ... Noop), counters, CAS, append,
delete, flush. With a user and password the same over SASL (PLAIN), and a wrong
password must be refused.

Usage: pylibmc_binary.py PORT [USER PASSWORD]
"""
import sys
import time

import pylibmc

from check import check, done, expect

port = sys.argv[1]
user, password = (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else (None, None)
tag = "pylibmc binary" + (" SASL" if user else "")
addr = [f"127.0.0.1:{port}"]


def client(username=user, pw=password):
    # cas: libmemcached fetches CAS uniques only when asked to.
    behaviors = {"cas": True}
    if username:
        return pylibmc.Client(addr, binary=True, username=username, password=pw, behaviors=behaviors)
    return pylibmc.Client(addr, binary=True, behaviors=behaviors)


c = client()


@check(f"{tag}: set/get of Python objects, TTL expires")
def _():
    obj = {"a": [1, 2, 3], "b": ("x", None), "c": 1.5}
    expect(c.set("obj", obj, time=60), "set obj")
    expect(c.get("obj") == obj, f"get obj: {c.get('obj')!r}")
    expect(c.set("short", [1, "two"], time=1), "set short")
    expect(c.get("short") == [1, "two"], "short before expiry")
    time.sleep(2.2)
    expect(c.get("short") is None, "short after expiry")
    expect(c.set("big", b"v" * 500_000), "set 500 kB")
    expect(c.get("big") == b"v" * 500_000, "get 500 kB")


@check(f"{tag}: get_multi of 1000 keys")
def _():
    items = {f"key:{i}": {"i": i, "s": "v" * (i % 50)} for i in range(1000)}
    failed = c.set_multi(items, time=300)
    expect(not failed, f"set_multi failed for {failed[:5]}")
    keys = list(items) + [f"missing:{i}" for i in range(100)]
    got = c.get_multi(keys)
    expect(got == items, f"get_multi: {len(got)} of {len(items)}, equal={got == items}")


@check(f"{tag}: counters")
def _():
    c.set("n", "10")
    expect(c.incr("n") == 11, "incr")
    expect(c.incr("n", 100) == 111, "incr 100")
    expect(c.decr("n", 11) == 100, "decr 11")
    expect(c.decr("n", 1000) == 0, "decr floors at 0")
    try:
        c.incr("no-such-counter")
        raise AssertionError("incr of a missing key must fail")
    except pylibmc.NotFound:
        pass


@check(f"{tag}: CAS")
def _():
    c.set("c", "one")
    value, cas = c.gets("c")
    expect(value == "one" and cas, f"gets: {value!r} {cas!r}")
    expect(c.cas("c", "two", cas), "cas with the current unique")
    expect(not c.cas("c", "three", cas), "cas with a stale unique refused")
    expect(c.get("c") == "two", "value after cas")


@check(f"{tag}: append, prepend")
def _():
    c.set("s", "mid")
    expect(c.append("s", "-end"), "append")
    expect(c.prepend("s", "start-"), "prepend")
    expect(c.get("s") == "start-mid-end", f"value {c.get('s')!r}")
    expect(not c.append("no-such-key", "x"), "append to a missing key fails")


@check(f"{tag}: add, replace, delete")
def _():
    c.delete("d")
    expect(c.add("d", 1), "add new")
    expect(not c.add("d", 2), "add existing refused")
    expect(c.replace("d", 3), "replace existing")
    expect(c.get("d") == 3, "value")
    expect(c.delete("d"), "delete")
    expect(c.get("d") is None, "gone")
    expect(not c.delete("d"), "delete missing")


@check(f"{tag}: flush_all")
def _():
    c.set("f1", "x")
    c.set("f2", "y")
    expect(c.flush_all(), "flush_all")
    expect(c.get_multi(["f1", "f2"]) == {}, "flushed")


if user:
    @check(f"{tag}: a wrong password is refused")
    def _():
        bad = client(user, password + "-wrong")
        try:
            bad.set("x", "y")
            raise AssertionError("set with a wrong password succeeded")
        except pylibmc.Error:
            pass

done()
