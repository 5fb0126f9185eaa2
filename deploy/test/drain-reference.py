#!/usr/bin/env python3
"""A tiny memcached-text server that stops the way memcached-rs must (SIGTERM/SIGINT).

Only the positive control for graceful-stop.sh: it proves the test can pass. It
knows set/get/delete/version/quit, ignores every flag but -l and -p, and on
SIGTERM or SIGINT closes its listener, finishes the requests it has read on every
connection, closes them and exits 0.
"""
import asyncio
import signal
import sys

store = {}
stopping = asyncio.Event()
handlers = set()


def reply_to(line, reader_buf):
    """Returns (reply bytes, bytes of reader_buf consumed) for one request line."""
    parts = line.split()
    if not parts:
        return b"ERROR\r\n", 0
    cmd = parts[0]
    if cmd == b"get":
        out = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k, len(store[k]), store[k])
                       for k in parts[1:] if k in store)
        return out + b"END\r\n", 0
    if cmd == b"set" and len(parts) >= 5:
        n = int(parts[4])
        if len(reader_buf) < n + 2:
            return None, 0  # wait for the data block
        store[parts[1]] = bytes(reader_buf[:n])
        return b"STORED\r\n", n + 2
    if cmd == b"delete" and len(parts) >= 2:
        return (b"DELETED\r\n" if store.pop(parts[1], None) is not None else b"NOT_FOUND\r\n"), 0
    if cmd == b"version":
        return b"VERSION drain-reference\r\n", 0
    if cmd == b"quit":
        return b"", -1
    return b"ERROR\r\n", 0


async def serve(reader, writer):
    handlers.add(asyncio.current_task())
    try:
        await answer(reader, writer)
    finally:
        writer.close()
        try:
            await writer.wait_closed()  # the replies still buffered go out first
        except OSError:
            pass
        handlers.discard(asyncio.current_task())


async def answer(reader, writer):
    buf = bytearray()
    while True:
        while b"\r\n" in buf:
            end = buf.index(b"\r\n")
            line, rest = bytes(buf[:end]), buf[end + 2:]
            out, used = reply_to(line, rest)
            if out is None:
                break
            if used < 0:
                return
            buf = rest[used:]
            writer.write(out)
            await writer.drain()
        if stopping.is_set():
            break  # everything read has been answered
        read = asyncio.ensure_future(reader.read(65536))
        stop = asyncio.ensure_future(stopping.wait())
        done, _ = await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
        if read not in done:
            read.cancel()
            break
        stop.cancel()
        chunk = read.result()
        if not chunk:
            break
        buf += chunk


async def main():
    args = sys.argv[1:]
    host = args[args.index("-l") + 1] if "-l" in args else "127.0.0.1"
    port = int(args[args.index("-p") + 1]) if "-p" in args else 11211
    server = await asyncio.start_server(serve, host, port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    server.close()  # stop accepting
    if handlers:
        await asyncio.wait(set(handlers))  # each finishes what it has read


asyncio.run(main())
