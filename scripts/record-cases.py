#!/usr/bin/env python3
"""Record memcached's exact replies into a case table (tests/cases/*.txt).

Every `expect`/`conn` line in a table is produced by this script from a real
memcached, never written by hand: the table is the evidence that each expectation
is memcached's, and the tests replay it against our server row by row
(tests/errors.rs replays tests/cases/errors.txt).

Usage:
  scripts/record-cases.py [--table T] [--bin /usr/bin/memcached] [--only NAME]   (re)record
  scripts/record-cases.py [--table T] --check                    exit 1 on any drift
  scripts/record-cases.py [--table T] --probe 'get a\\r\\n|||get b\\r\\n'   one-off exploration
                          (runs with the table's header: its args, env, files, probe)
  scripts/record-cases.py --packet 'op=0x01 key=foo extras=00000000 value=bar opaque=7'
                          print one binary-protocol request in the table's escapes
The default table is tests/cases/errors.txt.

Each case runs against a fresh server (SERVER_ARGS below, plus the table's `args`;
tests/errors.rs uses the same), on one connection: every `send` is written, then the
reply is read until the server stays quiet for IDLE seconds. Afterwards a probe
(`version` by default) learns whether the connection survived.

Table format (blocks separated by blank lines, '#' lines are comments kept as is):
  case <name>
  send <escaped bytes>        (one or more send/expect pairs)
  expect <escaped bytes>      (recorded)
  conn open|closed            (recorded: does the connection still answer afterwards?)
  ours <step> <escaped bytes> (hand-written, optional: what memcached-rs knowingly
                               sends instead at that step; kept as is)
Escapes: \\r \\n \\t \\0 \\\\ \\xNN, and \\{N:text} = text repeated N times.

Header (optional, one block before the first case, lines not starting with `case`;
errors.txt has none). `$TMP` in any header value is a directory made afresh for each
run of this script (a replay harness makes its own):
  args <server arguments>     appended to SERVER_ARGS (shell-split), e.g. `args -S`
  env NAME=VALUE              set in the server's environment
  file <path> <escaped bytes> written before the first server starts
  setup <shell command>       run once (sh -c, cwd $TMP) after the files are written,
                              e.g. to build a Cyrus sasldb with saslpasswd2
  probe <kind>                how "is the connection still open" is asked:
                                text            `version\\r\\n`, answer `VERSION ...` (default)
                                text-auth       same, and `CLIENT_ERROR unauthenticated`
                                                also counts as an answer (-Y servers)
                                binary-noop     binary Noop (0x0a), answer: a 0x81 0x0a header
                                binary-version  binary Version (0x0b), answer: a 0x81 0x0b
                                                header with status 0 (allowed before SASL auth)
  cas                         CAS values in replies are written as variables (below)

Per-case lines (hand-written, right after `case`, kept as is):
  args <server arguments>     appended after the header's args for this case's server
  probe <kind>                overrides the header's probe for this case
  mask <glob>...              stats: the value of every stat whose name matches is
                              written as `*` (text `STAT name *`; binary: the Stat
                              packet's value becomes `*`, its body length adjusted)
  keep <glob>...              stats: only the stats whose names match are kept
                              (text STAT lines / binary Stat packets; END and the
                              binary terminator stay)
  A replay harness applies the same mask/keep to the server's reply before comparing.

CAS variables (tables with a `cas` header line). CAS uniques are numbered by the
server (memcached: one global counter, so a fresh server's first store gets CAS 1;
a server with per-core counters numbers them differently), so expects do not carry
them by value. Each distinct non-zero CAS value of a case is named by its order of
first appearance in the replies: \\c{1}, \\c{2}, ... in text (decimal) and \\C{1}, ...
for the 8-byte big-endian CAS field of binary response headers. Same name = same
value, different names = different values. A `send` may use \\c{N} / \\C{N} to send a
CAS the server returned earlier in the case. CAS positions recognised in replies:
  - meta reply lines (HD VA EN NF NS EX): a flag token `c<digits>`
  - `VALUE <key> <flags> <bytes> <cas>` (gets/gats)
  - `ME <key> ... cas=<digits> ...` (me)
  - binary responses: header bytes 16..23 (0 stays literal: "no CAS")
CAS 0 in text (e.g. `EX c0`) stays literal too.
"""
import argparse, fnmatch, os, re, select, shlex, shutil, socket, struct, subprocess, sys, tempfile, time

SERVER_ARGS = ["-U", "0", "-t", "1", "-m", "64", "-c", "64", "-I", "1m"]  # = tests/errors.rs
IDLE = 0.3          # seconds of silence that end a reply
OVERALL = 10.0      # a reply never takes longer than this
PROBES = ("text", "text-auth", "binary-noop", "binary-version")


def unescape(s, cas_vars=None):
    """Escaped text -> bytes. cas_vars (index -> value) resolves \\c{N} and \\C{N}."""
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
            out += unescape(text, cas_vars) * int(count)
            i = end + 1
        elif n in "cC" and s[i + 2:i + 3] == "{":
            end = s.index("}", i)
            idx = int(s[i + 3:end])
            if cas_vars is None or idx not in cas_vars:
                raise ValueError(f"CAS variable {idx} is not known yet in {s!r}")
            v = cas_vars[idx]
            out += str(v).encode() if n == "c" else struct.pack(">Q", v)
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


# ---- reply normalisation: stats masks and CAS variables ----

BIN_HDR = 24


def split_binary(b):
    """Binary responses -> [(header, body)], plus any trailing partial bytes."""
    packets, i = [], 0
    while i + BIN_HDR <= len(b) and b[i] == 0x81:
        bodylen = struct.unpack(">I", b[i + 8:i + 12])[0]
        if i + BIN_HDR + bodylen > len(b):
            break
        packets.append((b[i:i + BIN_HDR], b[i + BIN_HDR:i + BIN_HDR + bodylen]))
        i += BIN_HDR + bodylen
    return packets, b[i:]


def match_any(name, globs):
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


def apply_stats_filter(reply, mask, keep):
    """Replace masked stat values by `*` and drop stats not kept (text and binary)."""
    if not mask and not keep:
        return reply
    if reply[:1] == b"\x81":
        packets, rest = split_binary(reply)
        out = bytearray()
        for hdr, body in packets:
            keylen = struct.unpack(">H", hdr[2:4])[0]
            extlen = hdr[4]
            if hdr[1] == 0x10 and keylen > 0:  # a Stat packet carrying one stat
                name = body[extlen:extlen + keylen].decode("latin-1")
                if keep and not match_any(name, keep):
                    continue
                if match_any(name, mask):
                    body = body[:extlen + keylen] + b"*"
                    hdr = hdr[:8] + struct.pack(">I", len(body)) + hdr[12:]
            out += hdr + body
        return bytes(out + rest)
    lines = reply.split(b"\r\n")
    out = []
    for line in lines:
        m = re.match(rb"STAT (\S+) (.*)$", line, re.S)
        if m:
            name = m.group(1).decode("latin-1")
            if keep and not match_any(name, keep):
                continue
            if match_any(name, mask):
                line = b"STAT " + m.group(1) + b" *"
        out.append(line)
    return b"\r\n".join(out)


META_CODES = (b"HD", b"VA", b"EN", b"NF", b"NS", b"EX")


def cas_spans(reply):
    """(start, end, kind) of every CAS value in a reply; kind 'c' text, 'C' binary."""
    spans = []
    if reply[:1] == b"\x81":
        i = 0
        for hdr, body in split_binary(reply)[0]:
            if hdr[16:24] != b"\0" * 8:
                spans.append((i + 16, i + 24, "C"))
            i += BIN_HDR + len(body)
        return spans
    i = 0
    while i < len(reply):
        eol = reply.find(b"\r\n", i)
        if eol < 0:
            break
        line = reply[i:eol]
        toks = line.split(b" ")
        skip = 0
        pos = i
        starts = []
        for t in toks:
            starts.append(pos)
            pos += len(t) + 1
        if toks[0] in META_CODES:
            for t, s in zip(toks[1:], starts[1:]):
                if re.fullmatch(rb"c[1-9][0-9]*", t):
                    spans.append((s + 1, s + len(t), "c"))
            if toks[0] == b"VA" and len(toks) > 1 and toks[1].isdigit():
                skip = int(toks[1]) + 2
        elif toks[0] == b"VALUE" and len(toks) >= 4:
            if len(toks) == 5 and re.fullmatch(rb"[1-9][0-9]*", toks[4]):
                spans.append((starts[4], starts[4] + len(toks[4]), "c"))
            if toks[3].isdigit():
                skip = int(toks[3]) + 2
        elif toks[0] == b"ME":
            for t, s in zip(toks[2:], starts[2:]):
                if re.fullmatch(rb"cas=[1-9][0-9]*", t):
                    spans.append((s + 4, s + len(t), "c"))
        i = eol + 2 + skip
    return spans


def render(reply, cas_vars):
    """Escape a reply; with cas_vars (a dict, updated), CAS values become variables."""
    if cas_vars is None:
        return escape(reply)
    by_value = {v: k for k, v in cas_vars.items()}
    out, last = [], 0
    for start, end, kind in cas_spans(reply):
        raw = reply[start:end]
        value = struct.unpack(">Q", raw)[0] if kind == "C" else int(raw)
        if value not in by_value:
            idx = len(cas_vars) + 1
            cas_vars[idx] = value
            by_value[value] = idx
        out.append(escape(reply[last:start]))
        out.append("\\%s{%d}" % (kind, by_value[value]))
        last = end
    out.append(escape(reply[last:]))
    return "".join(out)


# ---- servers and sessions ----

class Unsettled(Exception):
    """The input left the server mid-request (e.g. waiting for the rest of a data block)."""


class Header:
    """What a table declares about its server and connections (see the docstring)."""

    def __init__(self):
        self.args, self.env, self.files, self.setup = [], {}, [], []
        self.probe, self.cas = "text", False
        self.tmp = None

    def parse_line(self, line):
        word, _, rest = line.partition(" ")
        if word == "args": self.args += shlex.split(rest)
        elif word == "env":
            name, _, value = rest.partition("=")
            self.env[name] = value
        elif word == "file":
            path, _, content = rest.partition(" ")
            self.files.append((path, content))
        elif word == "setup": self.setup.append(rest)
        elif word == "probe":
            if rest not in PROBES:
                raise ValueError(f"unknown probe {rest!r}")
            self.probe = rest
        elif word == "cas": self.cas = True
        else:
            raise ValueError(f"unknown header line {line!r}")

    def sub(self, s):
        return s.replace("$TMP", self.tmp)

    def prepare(self):
        self.tmp = tempfile.mkdtemp(prefix="record-cases.")
        for path, content in self.files:
            path = self.sub(path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(unescape(self.sub(content)))
        for cmd in self.setup:
            subprocess.run(["sh", "-c", self.sub(cmd)], cwd=self.tmp, check=True,
                           env=dict(os.environ, TMP=self.tmp))

    def cleanup(self):
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def server_args(self):
        return SERVER_ARGS + [self.sub(a) for a in self.args]

    def server_env(self):
        env = dict(os.environ)
        env.update({k: self.sub(v) for k, v in self.env.items()})
        return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, header, extra=()):
    args = [binary, "-l", "127.0.0.1"] + header.server_args() + list(extra)
    if os.geteuid() == 0:
        args += ["-u", "root"]
    for _ in range(10):
        port = free_port()
        p = subprocess.Popen(args + ["-p", str(port)], env=header.server_env())
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


def bin_request(opcode, key=b"", extras=b"", value=b"", opaque=0, cas=0):
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0,
                       len(extras) + len(key) + len(value), opaque, cas) + extras + key + value


def probe_alive(s, kind, what):
    """True if the connection answers the probe, False if the server closed it."""
    s.setblocking(True)
    s.settimeout(2)
    try:
        if kind.startswith("text"):
            s.sendall(b"version\r\n")
            try:
                tail = s.recv(100)
            except TimeoutError:
                raise Unsettled(f"after {what}: no reply to version")
            if not tail:
                return False
            if tail.startswith(b"VERSION "):
                return True
            if kind == "text-auth" and tail == b"CLIENT_ERROR unauthenticated\r\n":
                return True
            raise Unsettled(f"after {what}: version got {tail!r}")
        opcode = 0x0a if kind == "binary-noop" else 0x0b
        s.sendall(bin_request(opcode, opaque=0x70726f62))
        tail = b""
        try:
            while len(tail) < BIN_HDR:
                chunk = s.recv(BIN_HDR - len(tail))
                if not chunk:
                    break
                tail += chunk
        except TimeoutError:
            raise Unsettled(f"after {what}: no reply to the {kind} probe")
        if not tail:
            return False
        if len(tail) == BIN_HDR and tail[0] == 0x81 and tail[1] == opcode and tail[6:8] == b"\0\0":
            return True
        raise Unsettled(f"after {what}: the {kind} probe got {tail!r}")
    except (BrokenPipeError, ConnectionResetError):
        return False


def session(port, sends, probe="text", cas_vars=None, mask=(), keep=()):
    """Run one case on a fresh connection: each send (escaped text) is followed by
    reading the reply until the server goes quiet. Returns ([rendered reply per
    send], 'open'|'closed')."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    replies = []
    raw_sends = []
    closed = False
    for text in sends:
        data = unescape(text, cas_vars)
        raw_sends.append(data)
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
        replies.append(render(apply_stats_filter(bytes(reply), mask, keep), cas_vars))
    if not closed:
        # Does the connection still work? A live one answers the probe.
        what = escape(b"".join(raw_sends))[:80]
        closed = not probe_alive(s, probe, what)
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


CASE_DIRECTIVES = ("args", "probe", "mask", "keep")


def parse_packet(spec):
    """`op=0x01 key=foo extras=0000000a value=bar opaque=7 cas=0` -> request bytes.
    key/value are escaped text; extras is hex."""
    f = dict(kv.split("=", 1) for kv in shlex.split(spec))
    return bin_request(int(f.get("op", "0"), 0), unescape(f.get("key", "")),
                       bytes.fromhex(f.get("extras", "")), unescape(f.get("value", "")),
                       int(f.get("opaque", "0"), 0), int(f.get("cas", "0"), 0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("MC_SERVER_BIN", "/usr/bin/memcached"))
    ap.add_argument("--table", default=os.path.join(os.path.dirname(__file__), "..", "tests", "cases", "errors.txt"))
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--only", help="record only cases whose name contains this")
    ap.add_argument("--probe", action="append", help="escaped input; '|||' separates steps")
    ap.add_argument("--packet", action="append", help="print a binary request's escapes")
    ap.add_argument("--probe-kind", choices=PROBES, help="--probe: override the table's probe")
    ap.add_argument("--args", help="--probe: extra server arguments (shell-split)")
    a = ap.parse_args()
    if a.packet:
        for p in a.packet:
            print(escape(parse_packet(p)))
        return
    text = open(a.table).read()
    blocks = parse_table(text)
    header = Header()
    for block in blocks:
        lines = [l for l in block if not l.startswith("#")]
        if lines and lines[0].startswith("case "):
            break
        for l in lines:
            header.parse_line(l)
    header.prepare()
    try:
        if a.probe:
            run_probes(a, header)
        else:
            record(a, header, blocks)
    finally:
        header.cleanup()


def run_probes(a, header):
    proc, port = start(a.bin, header, shlex.split(a.args or ""))
    probe = a.probe_kind or header.probe
    try:
        for p in a.probe:
            try:
                cas_vars = {} if header.cas else None
                replies, conn = session(port, p.split("|||"), probe, cas_vars)
                print(f"{conn}\t" + " ||| ".join(replies))
            except Unsettled as e:
                print(f"UNSETTLED\t{e}")
    finally:
        proc.kill()
        proc.wait()


def record(a, header, blocks):
    out, drift, n = [], 0, 0
    seen_case = False
    for block in blocks:
        case = [l for l in block if not l.startswith("#")]
        if not case or not case[0].startswith("case "):
            if case and seen_case:
                sys.exit(f"a block after the first case does not start with `case`: {case[0]!r}")
            out.append("\n".join(block))
            continue
        seen_case = True
        name = case[0].split(" ", 1)[1]
        if a.only and a.only not in name:
            out.append("\n".join(block))
            continue
        comments = [l for l in block if l.startswith("#")]
        sends = [l[5:] for l in case if l.startswith("send ")]
        directives = [l for l in case[1:] if l.split(" ", 1)[0] in CASE_DIRECTIVES]
        probe, mask, keep, args = header.probe, [], [], []
        for d in directives:
            word, _, rest = d.partition(" ")
            if word == "args":
                args += [header.sub(x) for x in shlex.split(rest)]
            elif word == "probe":
                if rest not in PROBES:
                    sys.exit(f"case {name}: unknown probe {rest!r}")
                probe = rest
            elif word == "mask":
                mask += rest.split()
            elif word == "keep":
                keep += rest.split()
        # A fresh server per case: no case can disturb another (flush, keys, stats).
        proc, port = start(a.bin, header, args)
        try:
            replies, conn = session(port, sends, probe, {} if header.cas else None, mask, keep)
        except (Unsettled, ValueError) as e:
            sys.exit(f"case {name}: {e}")
        finally:
            proc.kill()
            proc.wait()
        n += 1
        new = comments + [f"case {name}"] + directives
        for x, r in zip(sends, replies):
            new += [f"send {x}", f"expect {r}"]
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
