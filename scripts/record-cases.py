#!/usr/bin/env python3
"""Record memcached's exact replies into the error-case table (tests/cases/errors.txt).

Every `expect`/`conn` line in the table is produced by this script from a real
memcached, never written by hand: the table is the evidence that each expectation
is memcached's, and tests/errors.rs checks our server against it row by row.

Usage:
  scripts/record-cases.py [--bin /usr/bin/memcached] [--only NAME]   (re)record the table
  scripts/record-cases.py --check                                    exit 1 on any drift
  scripts/record-cases.py --probe 'get a\\r\\n|||get b\\r\\n'        one-off exploration

Each case runs against a fresh server (SERVER_ARGS below; tests/errors.rs uses the
same), on one connection: every `send` is written, then the reply is read until the
server stays quiet for IDLE seconds. Afterwards `version` is sent to learn whether
the connection survived.

Table format (blocks separated by blank lines, '#' lines are comments kept as is):
  case <name>
  send <escaped bytes>        (one or more send/expect pairs)
  expect <escaped bytes>      (recorded)
  conn open|closed            (recorded: does the connection still answer afterwards?)
Escapes: \\r \\n \\t \\0 \\\\ \\xNN, and \\{N:text} = text repeated N times.
"""
import argparse, os, re, select, socket, subprocess, sys, time

SERVER_ARGS = ["-U", "0", "-t", "1", "-m", "64", "-c", "64", "-I", "1m"]  # = tests/errors.rs
IDLE = 0.3          # seconds of silence that end a reply
OVERALL = 10.0      # a reply never takes longer than this


def unescape(s):
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = s[i + 1]
        if n == "r": out += b"\r"; i += 2
        elif n == "n": out += b"\n"; i += 2
        elif n == "t": out += b"\t"; i += 2
        elif n == "0": out += b"\0"; i += 2
        elif n == "\\": out += b"\\"; i += 2
        elif n == "x": out.append(int(s[i + 2:i + 4], 16)); i += 4
        elif n == "{":
            end = s.index("}", i)
            count, text = s[i + 2:end].split(":", 1)
            out += unescape(text) * int(count)
            i = end + 1
        else:
            raise ValueError(f"bad escape \\{n} in {s!r}")
    return bytes(out)


def escape(b):
    out = []
    # Compress long runs so 1 MB values stay one readable line.
    i = 0
    while i < len(b):
        j = i
        while j < len(b) and b[j] == b[i]:
            j += 1
        if j - i >= 16:
            out.append("\\{%d:%s}" % (j - i, escape(b[i:i + 1])))
            i = j
            continue
        c = b[i]
        if c == 13: out.append("\\r")
        elif c == 10: out.append("\\n")
        elif c == 9: out.append("\\t")
        elif c == 0: out.append("\\0")
        elif c == 92: out.append("\\\\")
        elif c in (123, 125): out.append("\\x%02x" % c)
        elif 32 <= c < 127: out.append(chr(c))
        else: out.append("\\x%02x" % c)
        i += 1
    return "".join(out)


class Unsettled(Exception):
    """The input left the server mid-request (e.g. waiting for the rest of a data block)."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary):
    args = [binary, "-l", "127.0.0.1"] + SERVER_ARGS
    if os.geteuid() == 0:
        args += ["-u", "root"]
    for _ in range(10):
        port = free_port()
        p = subprocess.Popen(args + ["-p", str(port)])
        for _ in range(100):
            if p.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return p, port
            except OSError:
                time.sleep(0.05)
        p.kill()
        p.wait()
    sys.exit("could not start " + binary)


def session(port, sends):
    """Run one case on a fresh connection: each send is followed by reading the
    reply until the server goes quiet. Returns ([reply per send], 'open'|'closed')."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    replies = []
    closed = False
    for data in sends:
        reply = bytearray()
        sent = 0
        deadline = time.time() + OVERALL
        last = time.time()
        while not closed and time.time() < deadline:
            want_w = [s] if sent < len(data) else []
            r, w, _ = select.select([s], want_w, [], 0.05)
            if w:
                try:
                    sent += s.send(data[sent:sent + 65536])
                    last = time.time()
                except (BrokenPipeError, ConnectionResetError):
                    sent = len(data)
            if r:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    closed = True
                    if os.environ.get("PROBE_VERBOSE"):
                        print("  (closed by server before the version check)")
                    break
                reply += chunk
                last = time.time()
            if sent >= len(data) and time.time() - last > IDLE:
                break
        replies.append(bytes(reply))
    if not closed:
        # Does the connection still work? A live one answers `version`.
        what = escape(b"".join(sends))[:80]
        try:
            s.setblocking(True)
            s.settimeout(2)
            s.sendall(b"version\r\n")
            try:
                tail = s.recv(100)
            except TimeoutError:
                raise Unsettled(f"after {what}: no reply to version")
            if not tail:
                closed = True
            elif not tail.startswith(b"VERSION "):
                raise Unsettled(f"after {what}: version got {tail!r}")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
    s.close()
    return replies, "closed" if closed else "open"


def parse_table(text):
    """Split the table into blocks (lists of lines) at blank lines."""
    blocks, cur = [], []
    for line in text.split("\n"):
        if line.strip() == "":
            if cur:
                blocks.append(cur)
                cur = []
        else:
            cur.append(line)
    if cur:
        blocks.append(cur)
    return blocks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("MC_SERVER_BIN", "/usr/bin/memcached"))
    ap.add_argument("--table", default=os.path.join(os.path.dirname(__file__), "..", "tests", "cases", "errors.txt"))
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--only", help="record only cases whose name contains this")
    ap.add_argument("--probe", action="append", help="escaped input; '|||' separates steps")
    a = ap.parse_args()
    if a.probe:
        proc, port = start(a.bin)
        try:
            for p in a.probe:
                try:
                    replies, conn = session(port, [unescape(x) for x in p.split("|||")])
                    print(f"{conn}\t" + " ||| ".join(escape(r) for r in replies))
                except Unsettled as e:
                    print(f"UNSETTLED\t{e}")
        finally:
            proc.kill()
            proc.wait()
        return
    text = open(a.table).read()
    out, drift, n = [], 0, 0
    for block in parse_table(text):
        case = [l for l in block if not l.startswith("#")]
        if not case:
            out.append("\n".join(block))
            continue
        name = case[0].split(" ", 1)[1]
        if a.only and a.only not in name:
            out.append("\n".join(block))
            continue
        comments = [l for l in block if l.startswith("#")]
        sends = [l[5:] for l in case if l.startswith("send ")]
        # A fresh server per case: no case can disturb another (flush, keys, stats).
        proc, port = start(a.bin)
        try:
            replies, conn = session(port, [unescape(x) for x in sends])
        except Unsettled as e:
            sys.exit(f"case {name}: {e}")
        finally:
            proc.kill()
            proc.wait()
        n += 1
        new = comments + [f"case {name}"]
        for x, r in zip(sends, replies):
            new += [f"send {x}", f"expect {escape(r)}"]
        new.append(f"conn {conn}")
        # `ours` lines are hand-written (where memcached-rs knowingly differs): keep them.
        new += [l for l in case if l.startswith("ours ")]
        if new != block:
            drift += 1
            if a.check:
                print(f"DRIFT {name}: " + " | ".join(new[len(comments) + 1:]), file=sys.stderr)
        out.append("\n".join(new))
    if a.check:
        print(f"checked {n} cases against {a.bin}: {drift} differ")
        sys.exit(1 if drift else 0)
    open(a.table, "w").write("\n\n".join(out) + "\n")
    print(f"recorded {n} cases from {a.bin} ({drift} changed)")


if __name__ == "__main__":
    main()
