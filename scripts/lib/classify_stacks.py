#!/usr/bin/env python3
"""Reads `perf script` output (samples with call stacks) of one server and prints one
line: CPU us per request and the share of samples in each part of the work.

Each sample goes to the first category matched walking its stack from the leaf up, so
the work is named by the nearest function that owns it: a copy under tcp_recvmsg is
"tcp receive", the peer's receive path run inside our send over loopback is "net rx",
a wake-up inside it is "sched". Used by scripts/profile-server.sh.

Usage: perf script | classify_stacks.py SERVER GENERATOR COMMANDS CPU_SECONDS
"""
import re
import sys

CATEGORIES = [
    ("sched", re.compile(r"^(__schedule|schedule|schedule_hrtimeout\w*|finish_task_switch\w*|try_to_wake_up|ttwu_\w+|"
                         r"enqueue_task\w*|dequeue_task\w*|pick_next_task\w*|__wake_up\w*|wake_up_\w+|"
                         r"select_task_rq\w*|update_curr\w*|psi_\w+)$")),
    ("net rx", re.compile(r"^(net_rx_action|__netif_receive_skb\w*|netif_receive_skb\w*|process_backlog|"
                          r"ip_rcv\w*|ip_local_deliver\w*|tcp_v4_rcv|tcp_v4_do_rcv|tcp_rcv_established|"
                          r"tcp_rcv_state_process|tcp_ack\w*|tcp_data_queue\w*|__tcp_ack_snd_check|"
                          r"tcp_event_data_recv|sk_filter\w*|do_softirq\w*|__do_softirq|handle_softirqs)$")),
    ("tcp send", re.compile(r"^(tcp_sendmsg\w*|tcp_write_xmit|__tcp_transmit_skb|tcp_push\w*|__tcp_push\w*|"
                            r"ip_queue_xmit|__ip_queue_xmit|ip_output|ip_finish_output\w*|__dev_queue_xmit|"
                            r"dev_hard_start_xmit|loopback_xmit|sock_sendmsg\w*|__sys_sendto|__sys_sendmsg|"
                            r"___sys_sendmsg|tcp_stream_alloc_skb|sk_stream_alloc_skb|io_send\w*|io_sendmsg\w*)$")),
    ("tcp receive", re.compile(r"^(tcp_recvmsg\w*|tcp_cleanup_rbuf|skb_copy_datagram\w*|__skb_datagram_iter|"
                               r"sock_recvmsg\w*|inet_recvmsg|__sys_recvfrom|tcp_rcv_space_adjust|"
                               r"io_recv\w*|sock_read_iter|tcp_release_cb|release_sock)$")),
    ("epoll", re.compile(r"^(ep_\w+|do_epoll_\w+|__x64_sys_epoll\w*|__do_sys_epoll\w*)$")),
    ("io_uring", re.compile(r"^(io_\w+|__io_\w+|tctx_task_work\w*|task_work_run|__x64_sys_io_uring\w*|"
                            r"__do_sys_io_uring\w*)$")),
    ("syscall entry", re.compile(r"^(entry_SYSCALL\w*|do_syscall_64|syscall_exit\w*|syscall_return\w*|"
                                 r"exit_to_user_mode\w*|__x64_sys_\w+|x64_sys_call|srso_\w+|"
                                 r"clear_bhb_loop|__x86_return_thunk|entry_\w+)$")),
]
ORDER = ["user", "tcp send", "net rx", "tcp receive", "io_uring", "epoll", "sched", "syscall entry", "other kernel"]


def classify(frames):
    """frames: (symbol, dso) from the leaf up."""
    if not frames:
        return "other kernel"
    if "kernel" not in frames[0][1]:
        return "user"
    for sym, _ in frames:
        sym = sym.split("+")[0]
        for name, pattern in CATEGORIES:
            if pattern.match(sym):
                return name
    return "other kernel"


def main():
    server, gen, commands, cpu = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    counts = {k: 0 for k in ORDER}
    frames, in_sample = [], False
    for line in sys.stdin:
        if not line.strip():
            if in_sample:
                counts[classify(frames)] += 1
            frames, in_sample = [], False
            continue
        if not line[0].isspace():
            in_sample = True
            continue
        parts = line.split(None, 1)
        if len(parts) == 2:
            rest = parts[1].rstrip()
            m = re.match(r"(.*) \((.*)\)$", rest)
            sym, dso = (m.group(1), m.group(2)) if m else (rest, "")
            frames.append((sym, dso))
    if in_sample:
        counts[classify(frames)] += 1
    total = sum(counts.values()) or 1
    us = cpu * 1e6 / commands if commands else float("nan")
    shares = "  ".join(f"{k} {100 * counts[k] / total:.0f}%" for k in ORDER)
    print(f"{server:13s} {gen:8s} {us:6.2f} us/req  ({total} samples)  {shares}")


if __name__ == "__main__":
    main()
