#!/usr/bin/python3
"""Runs a command under a Docker seccomp profile, without Docker.

    deploy/test/seccomp-run.py PROFILE.json COMMAND [ARG...]

Loads the profile's default action and its SCMP_ACT_ALLOW rules (names unknown to
this libseccomp are skipped, as Docker does) with no_new_privs, as runc does right
before it execs a container's entrypoint, then execs COMMAND. Lets the test check
that deploy/docker/seccomp-io_uring.json lets the server start and serve, and that
Docker's own default (io_uring refused) would not. Needs Debian's python3-seccomp.
"""
import json
import os
import sys

import seccomp


def action(name, errno_ret):
    if name == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(errno_ret)
    if name == "SCMP_ACT_KILL":
        return seccomp.KILL
    raise SystemExit(f"seccomp-run: unsupported action {name}")


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    profile = json.load(open(sys.argv[1]))
    errno_ret = profile.get("defaultErrnoRet", 1)
    sfilter = seccomp.SyscallFilter(defaction=action(profile["defaultAction"], errno_ret))
    allowed = skipped = 0
    for rule in profile["syscalls"]:
        if rule.get("args"):
            raise SystemExit("seccomp-run: argument filters are not supported")
        act = action(rule["action"], rule.get("errnoRet", errno_ret))
        for name in rule["names"]:
            try:
                sfilter.add_rule(act, name)
                allowed += 1
            except (RuntimeError, ValueError, OSError):
                skipped += 1  # not a syscall on this architecture
    sfilter.load()
    print(f"seccomp-run: {allowed} rules loaded ({skipped} names unknown here)", file=sys.stderr)
    os.execvp(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
