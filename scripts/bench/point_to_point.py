"""Point-to-point queues in a cluster: how fast one consumer gets its messages while another
consumer of the same queue holds many unacknowledged ones.

In cluster mode (``--redis-url``) a ``/queue/`` is a Redis stream with one consumer group. A node
*takes* messages for its consumers from the group: first what sits idle long enough in the
group's pending list (released messages, a dead node's), then new entries
(``server/backplane/redis/queues.py``). Every message a consumer holds unacknowledged stays in
that pending list, so a take may walk past all of them: the suspicion checked here is that a
consumer's next message comes later the more the queue's other consumers hold. ``--hoard 0`` is
the baseline.

Usage::

    python scripts/bench_point_to_point.py                         # hoard 5,000, time 2,000
    python scripts/bench_point_to_point.py --hoard 0                # the baseline
    python scripts/bench_point_to_point.py --hoard 20000 --messages 500
    python scripts/bench_point_to_point.py --peer 127.0.0.1:61613   # RabbitMQ's STOMP plugin

Prints ONE JSON object on stdout; progress goes to stderr (``--json-only``: warnings only).

Set-up (not timed): a private redis-server and one node in cluster mode over it (its own SQLite
file, migrated; ``--max-unacked`` and ``--queue-max-length`` raised to fit the run,
``--max-send-rate`` and ``--slow-consumer-bytes`` out of the way), reached over STOMP on raw TCP
(its ``--stomp-port``) with the benchmark core's client (``concert_hub_client``) minus its
WebSocket framing. ``--peer HOST:PORT`` uses a running broker's STOMP port instead (login
``--peer-login``/``--peer-passcode``, guest/guest as RabbitMQ has it; vhost ``/``); its CPU is
reported with ``--peer-pid``.

The run, on a fresh queue ``/queue/bench-p2p-<hex>``, one session each:

1. the publisher (role ``publisher``) SENDs ``--hoard`` + ``--messages`` messages, bodies ``0``,
   ``1``, …, in batches of 500 each ending with a receipt: every one is stored before anyone
   consumes (``publish_s``);
2. the hoarder (role ``integration``) subscribes with ``ack:client-individual`` and
   ``prefetch-count:<hoard>`` and never ACKs; it is waited for until it holds ``--hoard``
   messages (``hoard_s``). None with ``--hoard 0`` (a prefetch of 0 means ``--max-unacked``);
3. the worker (``integration``) subscribes with ``ack:client-individual`` and
   ``prefetch-count:1`` and ACKs each MESSAGE as it reads it, so each delivery after the first
   waits for one take. Timed: from its SUBSCRIBE to its ``--messages``-th MESSAGE.

Fields: ``latency_ms`` {p50, p99, max, mean}, from writing an ACK to reading the next MESSAGE
(the first MESSAGE's wait from the SUBSCRIBE is ``first_message_ms``); ``messages_per_s`` =
``--messages`` / ``elapsed_s``; ``cpu_us_per_message`` and ``cpu_pct`` (100 = one core) of the
server (the node, or ``--peer-pid``), Redis (its process, from /proc like the node's) and this
client over the timed window, with ``machine`` and ``other_processes`` (a busy machine shows
there); ``checks``: the worker got every message the hoarder does not hold exactly once, none
``redelivered:true``, and the hoarder holds exactly ``--hoard``; ``error``: why a run failed.
Afterwards the hoarder ACKs what it holds and every session DISCONNECTs: a peer's queue is left
empty, but RabbitMQ keeps it declared (``rabbitmqctl delete_queue bench-p2p-<hex>``). Exit
status 0; 1 when a check failed or the run did not finish; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar, cast

from bench.cpu import CpuSample, machine_pct, other_pct, pct, used_us
from bench.harness import (
    describe,
    install_uvloop,
    log,
    print_json,
    setup_logging,
    sigterm_interrupts,
    start_watchdog,
)
from bench.servers import (
    BENCH_SECRET,
    DEFAULT_PYTHON,
    REPO_ROOT,
    SetupError,
    free_port,
    log_summary,
    migrate,
    mint_tokens,
    start_node,
    start_redis,
)
from bench.stats import ms_summary
from concert_hub_client import Client, ClientError, HeartBeat, Message, WebSocketClient
from protocol.client import ClientConnection
from protocol.errors import ProtocolError

T = TypeVar("T")

#: SENDs per receipt while filling the queue.
BATCH = 500


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hoard", type=int, default=5000, help="messages the hoarder holds unacked")
    p.add_argument("--messages", type=int, default=2000, help="messages the worker is timed on")
    p.add_argument("--peer", metavar="HOST:PORT", help="a running broker's STOMP port instead")
    p.add_argument("--peer-login", default="guest")
    p.add_argument("--peer-passcode", default="guest")
    p.add_argument("--peer-pid", type=int, help="the peer's process, for its CPU")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per step (120)")
    p.add_argument("--python", default=DEFAULT_PYTHON)
    p.add_argument("--json-only", action="store_true")
    args = p.parse_args(argv)
    if args.hoard < 0 or args.messages < 1:
        p.error("--hoard must be >= 0 and --messages >= 1")
    if args.peer and not args.peer.rpartition(":")[2].isdigit():
        p.error("--peer wants HOST:PORT")
    return args


# -- STOMP over raw TCP ------------------------------------------------------------------------


class TcpClient(Client):
    """The benchmark core's :class:`~concert_hub_client.Client` on a broker's STOMP port: the
    same STOMP core, receipts and message handler, without WebSocket framing."""

    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)
        self._flush()  # CONNECT, queued by open_tcp

    def data_received(self, data: bytes) -> None:
        try:
            events = self.stomp.receive_data(data)
        except ProtocolError as exc:
            self._abort(f"bad input from the server: {describe(exc)}")
            return
        for event in events:
            if not isinstance(event, HeartBeat):
                self._on_frame(event)

    def _flush(self) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ClientError(self.error or "connection closed")
        self.transport.write(self.stomp.data_to_send())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_tcp(
    host: str, port: int, login: str, passcode: str, *, limit_s: float, consumer: Consumer | None
) -> TcpClient:
    """CONNECT (STOMP 1.2, no heart-beats) and wait for CONNECTED; ClientError names the step."""
    stomp = ClientConnection()
    stomp.connect(host="/", login=login, passcode=passcode)
    on_message = consumer.on_message if consumer else None
    ws = WebSocketClient(f"{host}:{port}")  # unused: Client wants one (its close code)
    loop = asyncio.get_running_loop()
    try:
        _, client = await asyncio.wait_for(
            loop.create_connection(lambda: TcpClient(ws, stomp, on_message), host, port), limit_s
        )
    except (OSError, TimeoutError) as exc:
        raise ClientError(f"TCP connect to {host}:{port}: {describe(exc)}") from exc
    await step(f"CONNECT as {login}", client.connected, limit_s)
    if consumer is not None:
        consumer.client = client
        client.on_close = consumer.lost
    return client


async def step(what: str, waiting: Awaitable[T], limit_s: float) -> T:
    """``waiting`` within ``limit_s`` seconds; ClientError naming ``what`` otherwise."""
    try:
        return await asyncio.wait_for(waiting, limit_s)
    except (ClientError, TimeoutError) as exc:
        raise ClientError(f"{what}: {describe(exc)}") from exc


# -- the run -----------------------------------------------------------------------------------


class Consumer:
    """One subscription's MESSAGEs as they are read; with ``acks``, each ACKed at once."""

    def __init__(self, want: int, *, acks: bool) -> None:
        self.want = want
        self.acks = acks
        self.client: Client | None = None
        self.messages: list[Message] = []
        #: per MESSAGE, seconds since the previous ACK (the first: since the SUBSCRIBE)
        self.waits: list[float] = []
        self.started = self.last = 0.0
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def on_message(self, message: Message) -> None:
        now = time.perf_counter()
        self.waits.append(now - self.last)
        self.messages.append(message)
        if len(self.messages) == self.want and not self.done.done():
            self.done.set_result(now)
        if self.acks and self.client is not None:
            self.client.ack(message)
            self.last = time.perf_counter()

    def lost(self, client: Client) -> None:
        if not self.done.done():
            self.done.set_exception(ClientError(client.error or "connection closed"))

    async def subscribe(self, destination: str, prefetch: int, limit_s: float) -> None:
        assert self.client is not None
        self.started = self.last = time.perf_counter()
        await self.client.subscribe(
            destination, "sub-0", ack="client-individual",
            headers=[("prefetch-count", str(prefetch))], timeout=limit_s,
        )  # fmt: skip

    def bodies(self) -> list[str]:
        return [m.body.decode() for m in self.messages]

    def redelivered(self) -> int:
        return sum(m.get("redelivered") == "true" for m in self.messages)


async def publish(client: Client, destination: str, count: int, limit_s: float) -> None:
    """SEND bodies ``0`` … ``count - 1``; each batch's last SEND asks for a receipt."""
    for first in range(0, count, BATCH):
        last = min(count, first + BATCH) - 1
        stored = client.expect_receipt(f"stored-{last}")
        for i in range(first, last):
            client.send(destination, str(i).encode())
        client.send(destination, str(last).encode(), receipt=f"stored-{last}")
        await step(f"receipt of SEND {last}", stored, limit_s)


async def start_cluster_node(
    args: argparse.Namespace, workdir: Path, stack: contextlib.AsyncExitStack, out: dict[str, Any]
) -> tuple[int, dict[str, int | None]]:
    """A private redis-server and one node in cluster mode over it; (STOMP port, pids)."""
    redis, redis_port = start_redis(workdir)
    stack.callback(redis.stop)
    database_url = f"sqlite+aiosqlite:///{workdir}/p2p.db"
    migrate(args.python, database_url)  # a node in cluster mode does not migrate SQLite itself
    stomp_port = free_port()
    flags = [
        "--redis-url", f"redis://127.0.0.1:{redis_port}/0", "--redis-key-prefix", "bench-p2p:",
        "--node-id", "p2p-1", "--stomp-port", str(stomp_port),  # the later --stomp-port wins
        "--max-unacked", str(max(4096, args.hoard)),
        "--queue-max-length", str(max(10_000, args.hoard + args.messages)),
        "--max-send-rate", "1e9", "--slow-consumer-bytes", str(64 << 20),
        "--max-connections", "100",  # the default wants more open files than a shell may allow
    ]  # fmt: skip
    node, _ = start_node(args.python, database_url, BENCH_SECRET, flags, workdir / "node.log",
                         what="node p2p-1", ready_path="/readyz")  # fmt: skip

    def stop_node() -> None:
        out["server_exit_code"] = node.stop()
        out["server_log"] = log_summary(node.log_path)

    stack.callback(stop_node)
    # the sessions' sockets close in the loop's next turns: before the node's (blocking) stop
    stack.push_async_callback(asyncio.sleep, 0.2)
    return stomp_port, {"server": node.pid, "redis": redis.pid}


async def run(args: argparse.Namespace, out: dict[str, Any], workdir: Path) -> None:
    limit_s = args.timeout
    destination = out["queue"]
    async with contextlib.AsyncExitStack() as stack:
        if args.peer:
            host, _, port = args.peer.rpartition(":")
            stomp_port = int(port)
            pids: dict[str, int | None] = {"server": args.peer_pid, "redis": None}
            logins = [(args.peer_login, args.peer_passcode)] * 3
        else:
            host = "127.0.0.1"
            stomp_port, pids = await start_cluster_node(args, workdir, stack, out)
            users = [("bench-publisher", "publisher"), ("bench-hoarder", "integration"),
                     ("bench-worker", "integration")]  # fmt: skip
            tokens = mint_tokens(BENCH_SECRET, users)
            logins = [(user, token) for (user, _), token in zip(users, tokens, strict=True)]
        pids["client"] = os.getpid()

        async def session(i: int, consumer: Consumer | None = None) -> TcpClient:
            client = await open_tcp(
                host, stomp_port, *logins[i], limit_s=limit_s, consumer=consumer
            )
            stack.push_async_callback(client.disconnect, limit_s)
            return client

        log.info("publishing %d messages to %s", args.hoard + args.messages, destination)
        started = time.perf_counter()
        await publish(await session(0), destination, args.hoard + args.messages, limit_s)
        out["publish_s"] = round(time.perf_counter() - started, 3)

        hoarder = Consumer(args.hoard, acks=False)
        out["hoard_s"] = None
        if args.hoard:
            await session(1, hoarder)
            await hoarder.subscribe(destination, args.hoard, limit_s)
            await step(f"hoarder's {args.hoard} messages", hoarder.done, limit_s)
            out["hoard_s"] = round(time.perf_counter() - hoarder.started, 3)

        log.info("worker: %d messages, ACKing each", args.messages)
        worker = Consumer(args.messages, acks=True)
        await session(2, worker)
        watched = [pid for pid in pids.values() if pid]
        before = CpuSample.take(watched)
        await worker.subscribe(destination, 1, limit_s)
        ended = await step(f"worker's {args.messages} messages", worker.done, limit_s)
        after = CpuSample.take(watched)
        elapsed = ended - worker.started
        out["elapsed_s"] = round(elapsed, 3)
        out["messages_per_s"] = round(args.messages / elapsed, 1)
        out["first_message_ms"] = round(worker.waits[0] * 1000, 2)
        out["latency_ms"] = ms_summary(worker.waits[1:], ("p50", "p99", "max", "mean"), digits=3)
        used = {name: used_us(before, after, [pid]) if pid else None for name, pid in pids.items()}
        out["cpu_us_per_message"] = {
            name: None if us is None else round(us / args.messages, 1) for name, us in used.items()
        }
        out["cpu_pct"] = {name: pct(us, elapsed) for name, us in used.items()}
        out["cpu_pct"] |= {"machine": machine_pct(before, after),
                           "other_processes": other_pct(before, after)}  # fmt: skip

        await asyncio.sleep(0.5)  # a message too many would come now
        out["checks"] = check(args, hoarder, worker)
        if hoarder.client is not None:  # leave the queue empty (a peer's outlives the run)
            for message in hoarder.messages:
                hoarder.client.ack(message)


def check(args: argparse.Namespace, hoarder: Consumer, worker: Consumer) -> dict[str, Any]:
    sent = {str(i) for i in range(args.hoard + args.messages)}
    held, got = hoarder.bodies(), worker.bodies()
    checks: dict[str, Any] = {
        "hoarder_holds": len(held),
        "hoarder_redelivered": hoarder.redelivered(),
        "worker_received": len(got),
        "worker_distinct": len(set(got)),
        "worker_redelivered": worker.redelivered(),
        # every message sent is held by the hoarder or was received by the worker, once
        "worker_got_the_rest_once": sorted(got) == sorted(sent - set(held))
        and set(held) <= sent
        and len(set(held)) == len(held),
    }
    checks["ok"] = (
        checks["hoarder_holds"] == args.hoard
        and checks["worker_received"] == args.messages
        and checks["worker_got_the_rest_once"]
        and not checks["hoarder_redelivered"]
        and not checks["worker_redelivered"]
    )
    return checks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.json_only)
    install_uvloop()
    # three waits of --timeout at most (hoarder, worker, the hoarder's ACKs), and the set-up
    start_watchdog(4 * args.timeout + 180)
    sigterm_interrupts()
    target = f"peer {args.peer}" if args.peer else "concert-hub (cluster: 1 node, private redis)"
    out: dict[str, Any] = {
        "target": target,
        "tree": str(REPO_ROOT),
        "queue": f"/queue/bench-p2p-{uuid.uuid4().hex[:8]}",
        "hoard": args.hoard,
        "messages": args.messages,
    }
    try:
        with tempfile.TemporaryDirectory(prefix="bench-p2p-") as tmp:
            asyncio.run(run(args, out, Path(tmp)))
    except (ClientError, SetupError, OSError) as exc:
        out["error"] = f"{target}: {describe(exc)}"
    print_json(out)
    return 0 if out.get("checks", {}).get("ok") and "error" not in out else 1
