"""Tiny check runner shared by the compat scripts: each check prints PASS/FAIL with
a reason, and the script exits non-zero if any failed (scripts/compat.sh counts the
lines)."""
import sys
import traceback

_failed = 0


def check(name):
    def wrap(fn):
        global _failed
        try:
            fn()
            print(f"PASS {name}", flush=True)
        except Exception as e:  # a failed check must never stop the others
            _failed += 1
            msg = str(e) or type(e).__name__
            print(f"FAIL {name}: {msg}", flush=True)
            if not isinstance(e, AssertionError):
                traceback.print_exc(limit=3)
        return fn
    return wrap


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def done():
    sys.exit(1 if _failed else 0)
