"""SPEC §3 authentication and §4 destination rules, through stomp.py over TCP and WebSocket."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from booking.keyring import Keyring
from protocol.client import Error
from server.auth import TokenAuthority
from tests.booking.conftest import create_event_via_api
from tests.conftest import ServerProcess
from tests.server.stomp_clients import (
    Client,
    Clients,
    RawTcp,
    RawWs,
    raw_peer,
    topic,
    unique,
)


def assert_forbidden(client: Client) -> None:
    """ERROR ``forbidden destination``, then the connection closes.

    (That the ERROR also carries the frame's ``receipt-id`` is checked once, in
    ``test_stomp_tcp.py::test_error_has_message_and_receipt_id_then_closes``, not in every row.)
    """
    error = client.listener.error()
    assert error.headers["message"] == "forbidden destination", error.headers
    client.listener.wait_disconnected()


def who(clients: Clients, transport: str, role: str | None) -> Client:
    """A session for ``role``: None is anonymous."""
    if role is None:
        return clients(transport)
    return clients(transport, user=unique(role), role=role)


# -- authentication ---------------------------------------------------------------------------


def test_passcode_token_authenticates(clients: Clients, transport: str) -> None:
    user = unique("alice")
    client = clients(transport, user=user, login="whatever-login")
    assert client.reply.headers["user-name"] == user


def test_authorization_bearer_header_authenticates(
    server: ServerProcess, clients: Clients, transport: str
) -> None:
    user = unique("bearer")
    token = server.token(user, "publisher")
    client = clients(transport, headers={"Authorization": f"Bearer {token}"})
    assert client.reply.headers["user-name"] == user
    dest = topic()
    client.send(dest, "publisher role from the Authorization header")


WHY_REFUSED = {
    "garbage-token": "the token is not a JWT (expected three base64url parts separated by dots)",
    "signed-with-another-secret": (
        "the token's signature does not verify (signed with another --secret?)"
    ),
    "expired": "the token has expired",
    "bearer-garbage": "the token is not a JWT (expected three base64url parts separated by dots)",
    "basic-scheme": "Authorization must be 'Bearer <token>'",
}


@pytest.mark.parametrize(
    "credentials",
    ["garbage-token", "signed-with-another-secret", "expired", "bearer-garbage", "basic-scheme"],
)
def test_bad_credentials_are_refused(
    server: ServerProcess, transport: str, credentials: str
) -> None:
    extra: dict[str, str] = {}
    token: str | None = None
    if credentials == "garbage-token":
        token = "not.a.jwt"
    elif credentials == "signed-with-another-secret":
        token = TokenAuthority(Keyring("some-other-secret-that-is-long-enough-for-hs256")).issue(
            "mallory", "admin"
        )
    elif credentials == "expired":
        token = server.token("late", "user", ttl=-60)
    elif credentials == "bearer-garbage":
        extra = {"Authorization": "Bearer xyz"}
    else:
        extra = {"Authorization": f"Basic {server.token('basic', 'user')}"}
    with raw_peer(server, transport) as peer:
        reply = peer.connect(token=token, extra={**extra, "receipt": "login"})
        assert reply.command == "ERROR", f"bad credentials accepted: {reply}"
        assert isinstance(reply, Error)
        assert reply.message == "authentication failed"
        assert "user-name" not in dict(reply.headers)
        # As for any refused frame that asked for a receipt (README "Errors").
        assert dict(reply.headers).get("receipt-id") == "login"
        # The body says what is wrong in our words, not the JWT library's.
        assert bytes(reply.body).decode() == WHY_REFUSED[credentials]
        peer.expect_closed()


def test_no_anonymous_refuses_credential_less_connect(
    make_server: Callable[..., ServerProcess], transport: str
) -> None:
    node = make_server(no_anonymous=True)
    with raw_peer(node, transport) as peer:
        reply = peer.connect()
        assert reply.command == "ERROR", f"anonymous CONNECT accepted with --no-anonymous: {reply}"
        assert isinstance(reply, Error)
        assert reply.message == "authentication failed"
        peer.expect_closed()
    with raw_peer(node, transport) as peer:
        assert peer.connect(token=node.token(unique("ok"))).command == "CONNECTED"


# -- subscribe rules --------------------------------------------------------------------------


#: ``{event}``: an event on sale (a draft's or an unknown event's topics are refused to all but
#: admins, as its seat map is: ``test_box_office.py::test_drafts_are_for_admins_only``).
PUBLIC = [
    "/topic/announcements",
    "/topic/events/{event}/announcements",
    "/topic/events/{event}/queue",
]
AUTHENTICATED = [
    "/topic/generic.stuff",
    "/topic/sdk/prices",
    "/user/queue/replies",
    "/user/queue/errors",
    "/user/queue/position",
]
NOBODY = [
    "/queue/",
    "/queue/a/b",
    "/queue/.hidden",
    "/user/bob/queue/replies",
    "/user/queue/other",
    "/app/ping",
    "foo",
    "/topicx/announcements",
    "/exchange/amq.topic/x",
]


@pytest.fixture(scope="module")
def on_sale(server: ServerProcess) -> int:
    return int(create_event_via_api(server)["id"])


@pytest.mark.parametrize("destination", PUBLIC)
def test_anonymous_may_subscribe_public_topics(
    clients: Clients, transport: str, destination: str, on_sale: int
) -> None:
    client = clients(transport)
    client.subscribe(destination.format(event=on_sale))
    assert not client.listener.pending("ERROR")


@pytest.mark.parametrize("destination", AUTHENTICATED)
def test_anonymous_may_not_subscribe_the_rest(
    clients: Clients, transport: str, destination: str
) -> None:
    client = clients(transport)
    client.conn.subscribe(destination, "s", receipt="r-sub")
    assert_forbidden(client)


@pytest.mark.parametrize("destination", PUBLIC + AUTHENTICATED)
def test_user_may_subscribe(
    clients: Clients, transport: str, destination: str, on_sale: int
) -> None:
    client = clients(transport, user=unique("u"))
    client.subscribe(destination.format(event=on_sale))
    assert not client.listener.pending("ERROR")


@pytest.mark.parametrize("role", ["user", "admin", "publisher"])
@pytest.mark.parametrize("destination", NOBODY)
def test_nobody_may_subscribe(
    clients: Clients, transport: str, destination: str, role: str
) -> None:
    client = clients(transport, user="bob" if role == "user" else unique(role), role=role)
    client.conn.subscribe(destination, "s", receipt="r-sub")
    assert_forbidden(client)


@pytest.mark.parametrize("role", ["admin", "publisher", "integration"])
def test_queue_consumers_may_subscribe_queues(clients: Clients, transport: str, role: str) -> None:
    client = clients(transport, user=unique(role), role=role)
    client.subscribe(f"/queue/{unique('acl')}")
    if role != "publisher":
        client.subscribe("/queue/integration.orders")
    assert not client.listener.pending("ERROR")


def test_a_publisher_may_not_take_the_server_s_integration_events(
    clients: Clients, transport: str
) -> None:
    """Each queue message goes to one consumer: a publisher subscribed there would take order
    events (buyers, seats, amounts) away from the box office's systems."""
    client = clients(transport, user=unique("publisher"), role="publisher")
    client.conn.subscribe("/queue/Integration.orders", "s", receipt="r-sub")
    assert_forbidden(client)


@pytest.mark.parametrize("role", [None, "user"])
def test_others_may_not_subscribe_queues(
    clients: Clients, transport: str, role: str | None
) -> None:
    client = who(clients, transport, role)
    client.conn.subscribe("/queue/x", "s", receipt="r-sub")
    assert_forbidden(client)


# -- send rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "destination", "allowed"),
    [
        (None, "/topic/announcements", False),
        (None, "/topic/generic", False),
        (None, "/app/ping", False),
        ("user", "/topic/generic", False),
        ("user", "/topic/announcements", False),
        ("user", "/topic/events/7/announcements", False),
        ("publisher", "/topic/generic", True),
        ("publisher", "/topic/announcements", True),
        ("publisher", "/topic/events/7/announcements", True),
        ("admin", "/topic/generic", True),
        ("admin", "/topic/announcements", True),
        ("admin", "/topic/events/7/announcements", True),
        ("admin", "/topic/events/7/seats", False),
        ("admin", "/topic/events/7/queue", False),
        ("publisher", "/topic/events/7/seats", False),
        ("admin", "/user/queue/replies", False),
        ("admin", "/user/bob/queue/replies", False),
        ("admin", "/queue/x", True),
        ("publisher", "/queue/x", True),
        (None, "/queue/x", False),
        ("user", "/queue/x", False),
        ("integration", "/queue/x", False),
        ("admin", "/queue/integration.orders", False),
        ("publisher", "/queue/integration.orders", False),
        # the server's queues in another case: one store compares names without it
        ("publisher", "/queue/Integration.orders", False),
        ("admin", "/queue/INTEGRATION.holds", False),
        ("admin", "foo", False),
    ],
)
def test_send_rules(
    clients: Clients, transport: str, role: str | None, destination: str, allowed: bool
) -> None:
    client = who(clients, transport, role)
    if destination == "/topic/generic":
        destination = topic("generic")
    client.conn.send(destination, "{}", receipt="r-send")
    if allowed:
        client.listener.receipt("r-send")
        assert not client.listener.pending("ERROR")
    else:
        assert_forbidden(client)


def test_publisher_messages_reach_anonymous_announcement_subscribers(
    clients: Clients, transport: str
) -> None:
    listener = clients(transport)
    listener.subscribe("/topic/announcements", "ann")
    publisher = clients(transport, user=unique("pub"), role="publisher")
    text = json.dumps({"id": unique("a"), "level": "info", "text": "doors open", "sent_at": "x"})
    publisher.send("/topic/announcements", text, content_type="application/json")
    message = listener.listener.message(body=text)
    assert message.headers["destination"] == "/topic/announcements"
    assert message.headers["subscription"] == "ann"


# -- /user destinations and /app/ping -----------------------------------------------------------


def test_ping_pong_reaches_all_of_the_senders_sessions_and_nobody_else(
    clients: Clients, transport: str
) -> None:
    alice = unique("alice")
    alice_tcp = clients("tcp", user=alice)
    alice_ws = clients("ws", user=alice)
    alice_other_sub = clients("tcp", user=alice)
    bob = clients("ws", user=unique("bob"))
    bob_tcp = clients("tcp", user=unique("bob"))
    for session in (alice_tcp, alice_ws, bob, bob_tcp):
        session.subscribe("/user/queue/replies", "replies")
    alice_other_sub.subscribe("/user/queue/errors", "errors")  # a different user queue
    sender = alice_tcp if transport == "tcp" else alice_ws
    sender.send(
        "/app/ping", "{}", content_type="application/json", headers={"correlation-id": "c-42"}
    )
    for session in (alice_tcp, alice_ws):
        pong = session.listener.message()
        assert json.loads(pong.body) == {"type": "pong"}
        assert pong.headers["content-type"].startswith("application/json")
        assert pong.headers["correlation-id"] == "c-42"
        assert pong.headers["destination"] == "/user/queue/replies"
        assert pong.headers["subscription"] == "replies"
    for session in (bob, bob_tcp, alice_other_sub):
        assert session.listener.quiet("MESSAGE", 0.3) == [], "pong reached the wrong session"
    assert alice_tcp.listener.quiet("MESSAGE", 0.2) == [], "more than one pong per session"


def test_user_queue_of_another_user_is_unreachable(server: ServerProcess) -> None:
    """Subscribing to another user's queue by name is forbidden over both transports."""
    for peer in (RawTcp.to(server), RawWs.to(server)):
        with peer:
            assert peer.connect(token=server.token("mallory")).command == "CONNECTED"
            peer.send(
                "SUBSCRIBE",
                {"id": "s", "destination": "/user/alice/queue/replies", "receipt": "r"},
            )
            error = peer.expect_error()
            assert error.message == "forbidden destination"
