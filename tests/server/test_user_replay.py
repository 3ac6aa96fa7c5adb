"""Messages to a user kept in memory on one node and replayed once after a reconnect (issue 17).

The cluster case (Redis, another node, the admission push) is ``tests/cluster/test_user_replay.py``.
"""

from __future__ import annotations

from tests.cluster.test_user_replay import REPLIES, ping, replies
from tests.server.stomp_clients import Clients, unique


def test_replies_missed_while_away_are_replayed_once(clients: Clients) -> None:
    alice = unique("alice")
    first = clients("tcp", user=alice)
    first_sub = first.subscribe(REPLIES)
    ping(first, "1")
    [(_, last_seen)] = replies(first, first_sub, 1)
    first.conn.transport.disconnect_socket()

    other = clients("ws", user=alice)
    other_sub = other.subscribe(REPLIES)
    ping(other, "2")
    missed = replies(other, other_sub, 1)

    back = clients("ws", user=alice)
    back_sub = back.subscribe(REPLIES, **{"resume-after": last_seen})
    assert replies(back, back_sub, 1) == missed
    assert back.listener.quiet("MESSAGE", 0.5) == []
    # Another user's replies are never replayed to alice, nor hers to them.
    mallory = clients("tcp", user=unique("mallory"))
    mallory.subscribe(REPLIES, **{"resume-after": "*"})
    assert mallory.listener.quiet("MESSAGE", 0.5) == []
