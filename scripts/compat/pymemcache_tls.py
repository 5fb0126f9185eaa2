#!/usr/bin/env python3
"""pymemcache over TLS (memcached's -Z), as its users set it up: a client with a
tls_context that trusts the server's CA. Usage: pymemcache_tls.py PORT CA_FILE"""
import ssl
import sys

from pymemcache.client.base import Client

from check import check, done, expect

port, ca = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context(cafile=ca)
context.check_hostname = False  # the test certificate names 127.0.0.1 and localhost
mc = Client(("127.0.0.1", port), tls_context=context, connect_timeout=5, timeout=5)


@check("pymemcache tls_context: set/get/delete")
def _():
    expect(mc.set("tls:k", b"v" * 100, noreply=False), "set returned false")
    expect(mc.get("tls:k") == b"v" * 100, "get did not return the value")
    expect(mc.delete("tls:k", noreply=False), "delete returned false")
    expect(mc.get("tls:k") is None, "value still there after delete")


@check("pymemcache tls_context: a 500 kB value and get_many over TLS")
def _():
    big = bytes(range(256)) * 2000
    expect(mc.set("tls:big", big, noreply=False), "set of 500 kB returned false")
    mc.set_many({f"tls:m{i}": str(i).encode() for i in range(50)}, noreply=False)
    got = mc.get_many(["tls:big"] + [f"tls:m{i}" for i in range(50)])
    expect(got.get("tls:big") == big, "the large value differs")
    expect(all(got.get(f"tls:m{i}") == str(i).encode() for i in range(50)), "get_many lost values")


@check("pymemcache tls_context: incr and stats (ssl_handshake_errors present)")
def _():
    mc.set("tls:n", b"10", noreply=False)
    expect(mc.incr("tls:n", 5) == 15, "incr")
    stats = mc.stats()
    expect(b"ssl_handshake_errors" in stats, "no ssl_handshake_errors in stats")


done()
