"""Rotating ``--secret`` (booking/keyring.py): what the old secret signed is still accepted while
it is listed in ``--previous-secrets``, nothing new is signed with it, and once it is dropped its
tokens, links and codes are refused like forged ones."""

from __future__ import annotations

import time

import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from booking import core
from booking.admissions import AdmissionSigner
from booking.customers import SIGN_IN
from booking.errors import AdmissionRequired, ProofRequired, SignInFailed
from booking.keyring import Keyring
from booking.orders import OrderKeys
from booking.outbox import OutboxMessage
from booking.payments import TestGateway
from booking.proof import ProofOfWork, solve
from booking.tickets import TicketSigner
from server.auth import AuthenticationFailed, TokenAuthority

OLD = Keyring("the secret before the rotation")
ROTATED = Keyring("the secret after the rotation", ("the secret before the rotation",))
DROPPED = Keyring("the secret after the rotation")


def test_a_keyring_needs_its_secrets() -> None:
    with pytest.raises(ValueError, match="empty"):
        Keyring("")
    with pytest.raises(ValueError, match="empty"):
        Keyring("new", ("",))


def test_tokens_signed_before_the_rotation_are_accepted_until_the_old_secret_goes() -> None:
    old_token = TokenAuthority(OLD).issue("alice", "user", 60)
    assert TokenAuthority(ROTATED).verify(old_token).name == "alice"
    with pytest.raises(AuthenticationFailed, match="signature"):
        TokenAuthority(DROPPED).verify(old_token)
    # new tokens are signed with the new secret alone
    new_token = TokenAuthority(ROTATED).issue("bob", "user", 60)
    assert TokenAuthority(DROPPED).verify(new_token).name == "bob"
    with pytest.raises(AuthenticationFailed):
        TokenAuthority(OLD).verify(new_token)
    # an old token that expired is refused as expired, not let through by the second key
    expired = jwt.encode(
        {"sub": "carol", "role": "user", "exp": int(time.time()) - 5, "iss": "concert-hub"},
        OLD.key("jwt"),
        algorithm="HS256",
    )
    with pytest.raises(AuthenticationFailed, match="expired"):
        TokenAuthority(ROTATED).verify(expired)


def test_admissions_order_links_ticket_codes_and_challenges_survive_the_rotation() -> None:
    admission = AdmissionSigner(OLD).issue(7, "alice", time.time() + 60)
    AdmissionSigner(ROTATED).verify(admission, 7, "alice")
    with pytest.raises(AdmissionRequired, match="not valid"):
        AdmissionSigner(DROPPED).verify(admission, 7, "alice")

    link_key = OrderKeys(OLD).key("ord_1")
    assert OrderKeys(ROTATED).opens("ord_1", link_key)
    assert OrderKeys(ROTATED).key("ord_1") == OrderKeys(DROPPED).key("ord_1") != link_key
    assert not OrderKeys(ROTATED).opens("ord_2", link_key)
    assert not OrderKeys(DROPPED).opens("ord_1", link_key)

    code = TicketSigner(OLD).issue(7, "A-A-1", "ord_1")
    claim = TicketSigner(ROTATED).verify(code)
    assert claim is not None and (claim.event_id, claim.seat_id) == (7, "A-A-1")
    assert TicketSigner(DROPPED).verify(code) is None

    challenge, _ = ProofOfWork(OLD).challenge(7, "alice", 4)
    proof = f"{challenge}:{solve(challenge, 4)}"
    ProofOfWork(ROTATED).verify(proof, 7, "alice")
    with pytest.raises(ProofRequired, match="not valid"):
        ProofOfWork(DROPPED).verify(proof, 7, "alice")


async def test_a_sign_in_link_sent_before_the_rotation_still_signs_in(engine: AsyncEngine) -> None:
    before = core.build(engine, TestGateway(engine), OLD)
    sent: list[OutboxMessage] = []

    async def keep(message: OutboxMessage) -> None:
        sent.append(message)

    for _ in range(2):
        await before.customers.request_sign_in("ada@example.com", "127.0.0.1")
    await before.outbox.deliver_due({SIGN_IN: keep})
    first, second = (m.payload for m in sent)
    after = core.build(engine, TestGateway(engine), ROTATED)
    assert (await after.customers.redeem_link(first["link"])).email == "ada@example.com"
    dropped = core.build(engine, TestGateway(engine), DROPPED)
    with pytest.raises(SignInFailed):
        await dropped.customers.redeem_code("ada@example.com", second["code"])
    assert (await after.customers.redeem_code("ada@example.com", second["code"])).email


def test_a_signature_in_any_characters_is_refused_not_a_crash() -> None:
    """A client's header may carry any character; the comparison is of bytes, so a stray one
    is a refusal, not a TypeError (a 500) from ``hmac.compare_digest`` on a non-ASCII string."""
    challenge, _ = ProofOfWork(ROTATED).challenge(7, "alice", 0)
    payload = challenge.partition(".")[0]
    for signature in ("é", "\udcff"):
        with pytest.raises(ProofRequired, match="not valid"):
            ProofOfWork(ROTATED).verify(f"{payload}.{signature}:1", 7, "alice")
        assert not OrderKeys(ROTATED).opens("ord_1", signature)
    assert TicketSigner(ROTATED).verify("cGF5.é") is None
