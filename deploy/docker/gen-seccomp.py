#!/usr/bin/env python3
"""Writes seccomp-io_uring.json: a Docker seccomp profile for memcached-rs.

Docker's default profile (since Engine 25) refuses io_uring_setup/enter/register,
and memcached-rs does all its I/O on io_uring, so it cannot start under it. This
profile allows what the systemd unit allows: systemd's @system-service set (as
`systemd-analyze syscall-filter` lists it on the machine that runs this) plus the
three io_uring calls, and fails everything else with EPERM, as Docker's does.

    python3 deploy/docker/gen-seccomp.py > deploy/docker/seccomp-io_uring.json
"""
import json
import subprocess
import sys

IO_URING = ["io_uring_setup", "io_uring_enter", "io_uring_register"]


def expand(group, seen):
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager", group],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    names = set()
    for line in listing[1:]:  # the first line is the group's own name
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("@"):
            if item not in seen:
                seen.add(item)
                names |= expand(item, seen)
        else:
            names.add(item)
    return names


def main():
    names = expand("@system-service", {"@system-service"}) | set(IO_URING)
    version = subprocess.run(["systemd-analyze", "--version"], capture_output=True,
                             text=True, check=True).stdout.split("\n")[0]
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64",
             "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": [
            {
                "names": sorted(names),
                "action": "SCMP_ACT_ALLOW",
                "comment": f"systemd @system-service ({version}) + io_uring_*: "
                           "the memcached-rs.service SystemCallFilter",
            }
        ],
    }
    json.dump(profile, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
