"""One output budget per session (issue 14, item 1): every byte a session queues counts.

A client that asks for RECEIPTs with ~8 KB ids and never reads them used to grow the server
without bound (only broker MESSAGEs counted against ``--slow-consumer-bytes``). Now such
sessions are closed as slow consumers, the server's memory stays bounded while they try, and a
well-behaved session on the same node keeps working.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from concert_hub_client.websocket import Opcode
from tests.conftest import ServerProcess
from tests.server.stomp_clients import (
    RawPeer,
    RawTcp,
    RawWs,
    Witness,
    encode_frame,
    log_tail,
    metric_sum,
)

#: Per misbehaving client: how much it tries to make the server queue (its receipt ids).
ATTEMPT_BYTES = 24 << 20
#: How much the server's RSS may grow while they try (unbounded, it grows by all of it).
RSS_BOUND = 48 << 20
BUDGET = 262144


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def big_receipt_unsubscribe(n: int) -> bytes:
    # The header section stays under --max-header-bytes (8192): the id alone is bounded by it.
    return encode_frame("UNSUBSCRIBE", {"id": "nothing", "receipt": f"{n:08d}" + "r" * 7900})


def try_send(peer: RawPeer, data: bytes, timeout: float = 1.0) -> bool:
    """Send ``data`` without waiting long for a server that no longer reads; False if it
    could not be sent (the server closed, reset, or stopped reading)."""
    if isinstance(peer, RawWs):
        peer.ws.send(data, Opcode.TEXT)
        data = peer.ws.data_to_send()
    assert isinstance(peer, RawTcp)
    peer.sock.settimeout(timeout)
    try:
        peer.sock.sendall(data)
    except OSError:
        return False
    return True


def test_receipts_count_against_the_output_budget(
    make_server: Callable[..., ServerProcess],
) -> None:
    node = make_server(slow_consumer_bytes=BUDGET, max_send_rate=1_000_000)
    assert node.proc is not None
    witness = Witness(node)
    bad: list[RawPeer] = []
    good = RawTcp.to(node)
    try:
        for transport in ("tcp", "ws"):
            for _ in range(3):
                peer: RawPeer = (
                    RawTcp(node.host, node.stomp_port, rcvbuf=4096)
                    if transport == "tcp"
                    else RawWs.to(node)
                )
                bad.append(peer)
                assert peer.connect(heart_beat="0,0").command == "CONNECTED"
        assert good.connect(heart_beat="0,0").command == "CONNECTED"
        before = rss(node.proc.pid)
        cuts_before = metric_sum(node, "concert_hub_errors", reason="slow_consumer")

        chunk = b"".join(big_receipt_unsubscribe(n) for n in range(16))
        sent = dict.fromkeys(range(len(bad)), 0)
        live = set(sent)
        peak = before
        rounds = 0
        while live:
            for index in tuple(live):
                if not try_send(bad[index], chunk):
                    live.discard(index)
                    continue
                sent[index] += len(chunk)
                if sent[index] >= ATTEMPT_BYTES:
                    live.discard(index)
            rounds += 1
            if rounds % 8 == 0:
                peak = max(peak, rss(node.proc.pid))
                assert peak - before < RSS_BOUND, (
                    f"server grew by {(peak - before) >> 20} MB while clients sent "
                    f"{sum(sent.values()) >> 20} MB of receipt requests they never read"
                )
                cuts = metric_sum(node, "concert_hub_errors", reason="slow_consumer")
                if cuts - cuts_before >= len(bad):
                    break
        peak = max(peak, rss(node.proc.pid))
        assert peak - before < RSS_BOUND, f"server grew by {(peak - before) >> 20} MB"

        # Every misbehaving session is closed as a slow consumer, whatever its transport...
        deadline = time.monotonic() + 20
        while metric_sum(node, "concert_hub_errors", reason="slow_consumer") - cuts_before < len(
            bad
        ):
            assert time.monotonic() < deadline, (
                f"not every receipt flooder was cut off\n{log_tail(node)}"
            )
            time.sleep(0.2)
        for peer in bad:
            peer.expect_closed(timeout=20)

        # ... while a client asking for the same receipts and reading them is served in full,
        # and unrelated sessions work.
        for n in range(64):
            good.send_raw(big_receipt_unsubscribe(n))
        for n in range(64):
            receipt = good.read_until("RECEIPT")
            assert receipt["receipt-id"].startswith(f"{n:08d}")
        witness.check()
        assert rss(node.proc.pid) - before < RSS_BOUND
    finally:
        for peer in bad:
            peer.close()
        good.close()
        witness.close()
