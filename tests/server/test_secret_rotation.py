"""``--previous-secrets``: a node whose ``--secret`` was rotated still accepts, over REST and
STOMP, the tokens the old secret signed while the old secret is listed, and refuses them once it
is not (README, "Rotate the secret" in docs/operations.md)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

from booking.keyring import Keyring
from server.auth import TokenAuthority
from tests.conftest import ServerProcess
from tests.server.stomp_clients import RawTcp

OLD_SECRET = "the-secret-before-the-rotation-long-enough"


def orders_status(node: ServerProcess, token: str) -> int:
    request = urllib.request.Request(
        f"{node.http_url}/api/orders", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            json.load(answer)
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def stomp_connects(node: ServerProcess, token: str) -> bool:
    with RawTcp.to(node) as peer:
        return peer.connect(token=token).command == "CONNECTED"


def test_tokens_of_a_previous_secret_are_accepted_while_it_is_listed(
    make_server: Callable[..., ServerProcess],
) -> None:
    old_token = TokenAuthority(Keyring(OLD_SECRET)).issue("alice", "user", 600)
    rotated = make_server(previous_secrets=f"{OLD_SECRET},another-retired-one")
    assert orders_status(rotated, old_token) == 200
    assert stomp_connects(rotated, old_token)
    assert orders_status(rotated, rotated.token("bob")) == 200
    dropped = make_server()
    assert orders_status(dropped, old_token) == 401
    assert not stomp_connects(dropped, old_token)
