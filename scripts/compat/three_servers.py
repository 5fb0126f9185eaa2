#!/usr/bin/env python3
"""A client over three servers (python-memcached's Client and pymemcache's
HashClient): every key comes back, and keys spread over all three.
Usage: three_servers.py PORT1 PORT2 PORT3"""
import sys

import memcache
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient

from check import check, done, expect

ports = [int(p) for p in sys.argv[1:4]]
N = 1000


def per_server_counts(keys):
    counts = []
    for p in ports:
        c = Client(("127.0.0.1", p), connect_timeout=5, timeout=5)
        counts.append(len(c.get_many(keys)))
        c.close()
    return counts


@check("python-memcached over three servers")
def _():
    mc = memcache.Client([f"127.0.0.1:{p}" for p in ports])
    data = {f"pm3:{i}": f"v{i}" for i in range(N)}
    expect(mc.set_multi(data) == [], "set_multi failed")
    got = mc.get_multi(list(data))
    expect(got == data, f"{len(got)} of {N} keys came back")
    counts = per_server_counts(list(data))
    expect(sum(counts) == N and all(c > 0 for c in counts), f"keys per server {counts}")
    print(f"  python-memcached keys per server: {counts}")


@check("pymemcache HashClient over three servers")
def _():
    hc = HashClient([("127.0.0.1", p) for p in ports], connect_timeout=5, timeout=5, use_pooling=False)
    data = {f"hc3:{i}": f"v{i}".encode() for i in range(N)}
    expect(hc.set_many(data, noreply=False) == [], "set_many failed")
    got = hc.get_many(list(data))
    expect(got == data, f"{len(got)} of {N} keys came back")
    for i in range(0, N, 97):
        expect(hc.get(f"hc3:{i}") == data[f"hc3:{i}"], f"get hc3:{i}")
    counts = per_server_counts(list(data))
    expect(sum(counts) == N and all(c > 0 for c in counts), f"keys per server {counts}")
    print(f"  HashClient keys per server: {counts}")


done()
