"""What one socket write costs the writing process on this machine: the floor under a fan-out.

A seat-map delta is one ``send`` per follower, and on loopback the writer's CPU pays for the
receiver's TCP work as well as its own (the kernel delivers into the peer's socket, and wakes the
peer, in the sender's system call). So the journey benchmark's node, at 10,000 followers, spends
at least this figure times 10,000 on each delta however lean its own code is: the floor under
the seat-map tick and a delta's spread (docs/journey-runs.md). On a real network the receiver's
work is done on its own machine.

Measured, each for ``--sockets`` connections and ``--rounds`` rounds of one ``--size``-byte
``send`` per socket, in the writer's own CPU time (user + system, ``getrusage``):

* ``tcp_loopback_us``: TCP over 127.0.0.1 with ``TCP_NODELAY``, as the node's sockets are; the
  readers are another process waiting in ``epoll``, as the benchmark's clients are;
* ``unix_us``: the same over Unix stream sockets (no TCP: what the transport itself costs);
* ``syscall_us``: a system call that does nothing (``getppid``), the price of the crossing.

``delta_ms_at``: the tcp figure times 1,000, 10,000 and 20,000 followers, in milliseconds of one
core: the least one delta can cost a node with that many followers on this machine.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import selectors
import socket
import time
from multiprocessing.connection import Connection
from typing import Any

from bench.harness import print_json, raise_nofile


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reader(family: int, address: Any, count: int, ready: Connection) -> None:
    """Connect ``count`` sockets and read whatever comes until the writer closes them."""
    raise_nofile()
    selector = selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.connect(address)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, sock)
    ready.send("connected")
    open_sockets = count
    while open_sockets:
        for key, _ in selector.select():
            peer: socket.socket = key.data
            try:
                data = peer.recv(1 << 16)
            except BlockingIOError:
                continue
            if not data:
                selector.unregister(peer)
                peer.close()
                open_sockets -= 1


def _writes_us(family: int, sockets: int, rounds: int, payload: bytes) -> float:
    """CPU-µs of the writer per ``send``, to ``sockets`` peers in a reading process."""
    listener = socket.socket(family, socket.SOCK_STREAM)
    path = f"/tmp/ch-send-floor-{os.getpid()}.sock"
    if family == socket.AF_UNIX:
        listener.bind(path)
    else:
        listener.bind(("127.0.0.1", 0))
    listener.listen(sockets)
    ours, theirs = mp.Pipe()
    reader = mp.get_context("spawn").Process(
        target=_reader, args=(family, listener.getsockname(), sockets, theirs), daemon=True
    )
    reader.start()
    peers = []
    try:
        for _ in range(sockets):
            peer, _ = listener.accept()
            if family != socket.AF_UNIX:
                peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peers.append(peer)
        ours.recv()
        spent = 0.0
        for _ in range(rounds):
            time.sleep(0.05)  # the reader drains and goes back to waiting
            started = _cpu_s()
            for peer in peers:
                peer.send(payload)
            spent += _cpu_s() - started
        return spent / (sockets * rounds) * 1e6
    finally:
        for peer in peers:
            peer.close()
        listener.close()
        reader.join(10)
        if family == socket.AF_UNIX:
            os.unlink(path)


def _syscall_us(count: int = 200_000) -> float:
    started = _cpu_s()
    for _ in range(count):
        os.getppid()
    return (_cpu_s() - started) / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=2000, help="connections (2000)")
    parser.add_argument("--rounds", type=int, default=20, help="sends per socket (20)")
    parser.add_argument("--size", type=int, default=300, help="bytes per send (300: a delta)")
    args = parser.parse_args()
    raise_nofile()
    payload = b"x" * args.size
    tcp = _writes_us(socket.AF_INET, args.sockets, args.rounds, payload)
    unix = _writes_us(socket.AF_UNIX, args.sockets, args.rounds, payload)
    print_json(
        {
            "sockets": args.sockets,
            "rounds": args.rounds,
            "size": args.size,
            "tcp_loopback_us": round(tcp, 2),
            "unix_us": round(unix, 2),
            "syscall_us": round(_syscall_us(), 3),
            "delta_ms_at": {str(n): round(tcp * n / 1000, 1) for n in (1000, 10_000, 20_000)},
        }
    )
    return 0
