"""Door check-in in the booking core, on SQLite and MariaDB: a ticket admits once (also when
gates race for it), refusals say why, offline uploads merge to the same state in any order."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update

from booking import core
from booking.audit import Staff
from booking.catalog import EventInfo
from booking.checkin import Merged, OfflineScan, Reason
from booking.clock import utcnow
from booking.core import BookingCore
from booking.errors import InvalidRequest
from booking.holds import new_id
from booking.keyring import Keyring
from booking.layout import LayoutSpec, SectionSpec, TierSpec
from booking.payments import TestGateway
from booking.schema import events, orders, tickets
from booking.ticket_keys import ticket_id
from booking.tickets import TicketSigner
from server.database import make_engine
from tests.booking.conftest import VISA, build_service, buy, event_spec, rendered, rows
from tests.conftest import SECRET


async def bought(service: BookingCore, event: EventInfo, user: str, seats: list[str]) -> list[str]:
    hold = await service.holds.hold(event.id, user, seats)
    paid = await buy(service, user, hold.id, f"key-{hold.id}", VISA)
    return [t["code"] for t in rendered(paid)["tickets"]]


async def issue_directly(service: BookingCore, event: EventInfo, count: int) -> list[str]:
    """``count`` valid tickets of one order, written straight to the tables (checkout is not
    what these tests are about, and a thousand checkouts take a while)."""
    await service.codes.ready()
    order_id = new_id("ord")
    now = utcnow()
    seat_ids = list(event.seats)[:count]
    codes = [service.codes.issue(event.id, s, order_id) for s in seat_ids]
    async with service.engine.begin() as conn:
        await conn.execute(
            insert(orders).values(
                id=order_id, event_id=event.id, user_id="crowd", hold_id=new_id("hld"),
                status="paid", amount_cents=0, currency="EUR", payment_id=new_id("pay"),
                created_at=now, email="crowd@example.com",
            )
        )  # fmt: skip
        await conn.execute(
            insert(tickets),
            [
                {
                    "code": c,
                    "order_id": order_id,
                    "event_id": event.id,
                    "seat_id": s,
                    "user_id": "crowd",
                    "active_seat_id": s,
                    "status": "valid",
                    "issued_at": now,
                }
                for c, s in zip(codes, seat_ids, strict=True)
            ],
        )
    return codes


async def big_event(service: BookingCore, seats: int) -> EventInfo:
    layout = LayoutSpec(
        tiers=[TierSpec(name="Floor", price_cents=1000, currency="EUR")],
        sections=[SectionSpec(name="F", rows=seats // 100, seats_per_row=100, tier="Floor")],
    )
    return await service.inventory.create_event(event_spec(layout=layout))


async def test_a_ticket_admits_once_and_says_why_not(
    service: BookingCore, event: EventInfo
) -> None:
    (code,) = await bought(service, event, "alice", ["A-A-1"])
    first = await service.door.redeem(event.id, code, "North", "dev-1")
    assert first.reason is Reason.ADMITTED
    assert (first.seat_id, first.tier) == ("A-A-1", "Gold")
    second = await service.door.redeem(event.id, code, "South", "dev-2")
    assert second.reason is Reason.ALREADY_USED
    assert second.used_gate == "North"
    assert second.used_at is not None and second.used_at <= utcnow()
    # the other gate's refusal changed nothing
    again = await service.door.redeem(event.id, code, "North", "dev-1")
    assert (again.reason, again.used_gate, again.used_at) == (
        Reason.ALREADY_USED, "North", second.used_at,
    )  # fmt: skip


async def test_refusals(service: BookingCore, event: EventInfo) -> None:
    hold = await service.holds.hold(event.id, "alice", ["A-A-1"])
    paid = await buy(service, "alice", hold.id, "key-1", VISA)
    code = rendered(paid)["tickets"][0]["code"]
    other = await service.inventory.create_event(event_spec(name="Other Night"))
    (other_code,) = await bought(service, other, "bob", ["A-A-1"])
    version, kid, payload, signature = code.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    forged = [
        f"{version}.{kid}.{payload}.{flipped}",
        "garbage",
        TicketSigner(Keyring("another secret")).issue(event.id, "A-A-1", "ord_x"),
        # genuinely signed, never sold
        service.codes.issue(event.id, "A-A-5", "ord_x"),
        # the real code with its signature's letters in the other case (MariaDB compares the
        # code column without case: only the exact code is a ticket)
        f"{version}.{kid}.{payload}.{signature.swapcase()}",
    ]
    for bad in forged:
        assert (await service.door.redeem(event.id, bad, "G", "d")).reason is Reason.FORGED
    assert (await service.door.redeem(event.id, other_code, "G", "d")).reason is (
        Reason.WRONG_EVENT
    )
    await service.orders.cancel(rendered(paid)["order_id"], "alice")
    assert (await service.door.redeem(event.id, code, "G", "d")).reason is Reason.VOID


async def test_legacy_hmac_codes_still_admit_online(service: BookingCore, event: EventInfo) -> None:
    (code,) = await bought(service, event, "alice", ["A-A-1"])
    legacy = TicketSigner(Keyring(SECRET)).issue(event.id, "A-A-1", "ord_legacy")
    async with service.engine.begin() as conn:
        await conn.execute(update(tickets).where(tickets.c.code == code).values(code=legacy))
    assert (await service.door.redeem(event.id, legacy, "G", "d")).reason is Reason.ADMITTED
    assert (await service.door.redeem(event.id, legacy, "G", "d")).reason is Reason.ALREADY_USED


async def test_rotated_out_keys_verify_until_their_event_is_over(
    service: BookingCore, event: EventInfo
) -> None:
    old_a, old_b = await bought(service, event, "alice", ["A-A-1", "A-A-2"])
    old_kid = old_a.split(".")[1]
    new_key = await service.codes.keys.rotate()
    assert new_key.kid != old_kid
    (fresh,) = await bought(service, event, "bob", ["A-A-3"])
    assert fresh.split(".")[1] == new_key.kid
    # before the event is over, both keys verify
    assert (await service.door.redeem(event.id, old_a, "G", "d")).reason is Reason.ADMITTED
    listed = await service.door.checkin_list(event.id)
    assert {k.kid for k in listed.keys} == {old_kid, new_key.kid}
    # once it is over (it started 13 hours ago), the retired key no longer does
    async with service.engine.begin() as conn:
        await conn.execute(
            update(events)
            .where(events.c.id == event.id)
            .values(starts_at=utcnow() - timedelta(hours=13))
        )
    node = build_service(service.engine)  # a node that reads the event afresh
    assert (await node.door.redeem(event.id, old_b, "G", "d")).reason is Reason.RETIRED_KEY
    assert (await node.door.redeem(event.id, fresh, "G", "d")).reason is Reason.ADMITTED
    listed = await node.door.checkin_list(event.id)
    assert [k.kid for k in listed.keys] == [new_key.kid]


async def test_fifty_gates_racing_for_one_code_admit_once(
    service: BookingCore, event: EventInfo
) -> None:
    (code,) = await bought(service, event, "alice", ["A-A-1"])
    results = await asyncio.gather(
        *(service.door.redeem(event.id, code, f"gate-{i}", f"dev-{i}") for i in range(50))
    )
    reasons = [r.reason for r in results]
    assert reasons.count(Reason.ADMITTED) == 1
    assert reasons.count(Reason.ALREADY_USED) == 49
    winner = next(r for r, res in enumerate(results) if res.admitted)
    assert {r.used_gate for r in results if not r.admitted} == {f"gate-{winner}"}


async def test_two_gates_interleaved_admit_every_ticket_once(service: BookingCore) -> None:
    # 1,000 tickets on MariaDB (the issue's race); SQLite serialises every writer anyway, so a
    # few hundred show the same there in a fraction of the time
    tickets = 1000 if service.engine.dialect.name != "sqlite" else 300
    event = await big_event(service, 1000)
    codes = await issue_directly(service, event, tickets)
    admitted: dict[str, list[str]] = {}

    async def gate(name: str, queue: list[str]) -> None:
        for code in queue:
            result = await service.door.redeem(event.id, code, name, name)
            if result.admitted:
                admitted.setdefault(code, []).append(name)

    # each gate scans every ticket, several lanes at a time, in opposite orders
    lanes = 4
    await asyncio.gather(
        *(gate("East", codes[i::lanes]) for i in range(lanes)),
        *(gate("West", codes[::-1][i::lanes]) for i in range(lanes)),
    )
    assert len(admitted) == tickets
    assert all(len(gates) == 1 for gates in admitted.values())
    progress = await service.door.progress(event.id)
    assert (progress.sold, progress.scanned) == (tickets, tickets)
    assert sum(progress.by_gate.values()) == tickets
    assert sum(n for _, n in progress.per_minute) == tickets


async def test_two_nodes_racing_admit_each_ticket_once(
    service: BookingCore, migrated_database: str
) -> None:
    """Each node groups its own scans into shared transactions; only the database keeps the
    nodes apart: every ticket scanned at four gates on two nodes at once is let in once, and the
    gates that lost name the gate that won."""
    if service.engine.dialect.name == "sqlite":
        pytest.skip("SQLite is one node's database")
    other_engine = make_engine(migrated_database)
    try:
        other = build_service(other_engine)
        event = await big_event(service, 300)
        codes = await issue_directly(service, event, 300)
        scans = [
            (node, code, f"{name}-{lane}")
            for code in codes
            for node, name in ((service, "A"), (other, "B"))
            for lane in range(2)
        ]
        results = await asyncio.gather(
            *(node.door.redeem(event.id, code, gate, gate) for node, code, gate in scans)
        )
    finally:
        await other_engine.dispose()
    winners: dict[str, str] = {}
    for (_, code, gate), result in zip(scans, results, strict=True):
        if result.admitted:
            assert code not in winners, "a ticket let in twice"
            winners[code] = gate
    assert set(winners) == set(codes)
    for (_, code, _), result in zip(scans, results, strict=True):
        if not result.admitted:
            assert result.reason is Reason.ALREADY_USED
            assert result.used_gate == winners[code]
    found = await rows(service.engine, tickets, tickets.c.event_id == event.id)
    assert {r.code: r.admitted_gate for r in found} == winners
    progress = await service.door.progress(event.id)
    assert (progress.scanned, sum(progress.by_gate.values())) == (300, 300)


async def test_one_code_scanned_at_two_gates_at_once_names_the_winner(
    service: BookingCore,
) -> None:
    event = await big_event(service, 100)
    codes = await issue_directly(service, event, 60)
    results = await asyncio.gather(
        *(service.door.redeem(event.id, code, gate, gate) for code in codes
          for gate in ("North", "South"))
    )  # fmt: skip
    for pair in zip(results[::2], results[1::2], strict=True):
        won = [r for r in pair if r.admitted]
        lost = [r for r in pair if not r.admitted]
        assert len(won) == 1 and won[0].holder == "crowd@example.com"
        assert lost[0].reason is Reason.ALREADY_USED
        assert lost[0].used_gate == ("North", "South")[pair.index(won[0])]
        assert lost[0].seat_id == won[0].seat_id and lost[0].used_at is not None


async def sync_state(service: BookingCore, event_id: int, codes: list[str]) -> Any:
    """The event's door state, by ticket position in ``codes`` (so two events compare)."""
    index = {ticket_id(c): i for i, c in enumerate(codes)}
    found = await rows(service.engine, tickets, tickets.c.event_id == event_id)
    admitted = sorted((codes.index(r.code), r.admitted_at, r.admitted_gate) for r in found)
    conflicts = sorted(
        (index[c.ticket_id], c.first_gate, c.first_at, c.second_gate, c.second_at)
        for c in await service.door.conflicts(event_id)
    )
    return admitted, conflicts


async def test_offline_uploads_merge_the_same_in_either_order(service: BookingCore) -> None:
    start = utcnow() - timedelta(minutes=10)
    finals = []
    for order in ("AB", "BA"):
        event = await big_event(service, 100)
        codes = await issue_directly(service, event, 10)
        # scanner A let in tickets 0-5, B tickets 4-9: 4 and 5 by both (A first on 4, B on 5)
        a = [OfflineScan(c, start + timedelta(seconds=i * 10)) for i, c in enumerate(codes[:6])]
        b = [OfflineScan(codes[i], start + timedelta(seconds=i * 10 + 5)) for i in range(4, 10)]
        b[1] = OfflineScan(codes[5], start + timedelta(seconds=49))  # before A's 50
        uploads = {"A": a, "B": b}
        for name in order:
            merged = await service.door.merge(event.id, name, f"dev-{name}", uploads[name])
            assert Merged.ADMITTED in {m.outcome for m in merged}
        # uploading again changes nothing
        again = await service.door.merge(event.id, "A", "dev-A", a)
        assert {m.outcome for m in again} == {Merged.DUPLICATE}
        admitted, conflicts = await sync_state(service, event.id, codes)
        assert [gate for _, _, gate in admitted] == ["A"] * 5 + ["B"] * 5
        # conflicts for exactly the two codes both let in, the earlier redemption first
        assert [(c[0], c[1], c[3]) for c in conflicts] == [(4, "A", "B"), (5, "B", "A")]
        finals.append((admitted, conflicts))
    assert finals[0] == finals[1]


async def test_an_online_admission_later_beaten_by_an_earlier_offline_one_is_a_conflict(
    service: BookingCore, event: EventInfo
) -> None:
    (code,) = await bought(service, event, "alice", ["A-A-1"])
    online = await service.door.redeem(event.id, code, "Main", "dev-1")
    assert online.admitted
    earlier = utcnow() - timedelta(minutes=1)
    (merged,) = await service.door.merge(event.id, "Side", "dev-2", [OfflineScan(code, earlier)])
    assert merged.outcome is Merged.ADMITTED  # the earlier one wins
    (conflict,) = await service.door.conflicts(event.id)
    assert (conflict.first_gate, conflict.first_at) == ("Side", earlier)
    assert conflict.second_gate == "Main" and not conflict.second_offline


async def test_reentry_rearms_a_ticket(service: BookingCore, event: EventInfo) -> None:
    (code,) = await bought(service, event, "alice", ["A-A-1"])
    assert (await service.door.redeem(event.id, code, "G", "d")).admitted
    await service.door.set_reentry(event.id, True)
    assert (await service.door.leave(event.id, code, "G")).reason is Reason.EXITED
    assert (await service.door.leave(event.id, code, "G")).reason is Reason.NOT_INSIDE
    assert (await service.door.redeem(event.id, code, "H", "d")).admitted
    assert (await service.door.redeem(event.id, code, "H", "d")).reason is Reason.ALREADY_USED
    assert await service.door.conflicts(event.id) == []
    progress = await service.door.progress(event.id)
    assert progress.scanned == 1 and progress.by_gate == {"G": 1, "H": 1}


async def test_offline_exits_merge_in_time_order_whatever_the_upload_order(
    service: BookingCore,
) -> None:
    """In at A (t0), out at B (t1), in again at C (t2), then a second entry at A while inside
    (t3): each scanner uploads its own scans, in every order; the replay always ends the same."""
    start = utcnow() - timedelta(minutes=10)
    at = [start + timedelta(seconds=s) for s in (0, 10, 20, 30)]
    finals = []
    for order in itertools.permutations("ABC"):
        event = await big_event(service, 100)
        await service.door.set_reentry(event.id, True)
        (code,) = await issue_directly(service, event, 1)
        uploads = {
            "A": [OfflineScan(code, at[0]), OfflineScan(code, at[3])],
            "B": [OfflineScan(code, at[1], exit=True)],
            "C": [OfflineScan(code, at[2])],
        }
        for name in order:
            await service.door.merge(event.id, name, f"dev-{name}", uploads[name])
        (ticket,) = await rows(service.engine, tickets, tickets.c.event_id == event.id)
        assert (ticket.admitted_at, ticket.admitted_gate, ticket.rearmed_at) == (at[2], "C", at[1])
        (conflict,) = await service.door.conflicts(event.id)
        assert (conflict.first_gate, conflict.second_gate, conflict.second_at) == ("C", "A", at[3])
        # the answers, uploaded again, say what each scan was
        answers = {
            name: [m.outcome for m in await service.door.merge(event.id, name, "x", scans)]
            for name, scans in uploads.items()
        }
        assert answers == {"A": [Merged.DUPLICATE] * 2, "B": [Merged.DUPLICATE],
                           "C": [Merged.DUPLICATE]}  # fmt: skip
        progress = await service.door.progress(event.id)
        assert progress.scanned == 1 and progress.by_gate == {"A": 2, "C": 1}
        finals.append((ticket.admitted_gate, ticket.rearmed_at, conflict.second_at))
    assert len(set(finals)) == 1


async def test_an_offline_exit_outside_changes_nothing_and_needs_reentry(
    service: BookingCore, event: EventInfo
) -> None:
    (code,) = await bought(service, event, "alice", ["A-A-1"])
    earlier = utcnow() - timedelta(minutes=1)
    with pytest.raises(InvalidRequest, match="re-entry"):
        await service.door.merge(event.id, "Out", "d", [OfflineScan(code, earlier, exit=True)])
    await service.door.set_reentry(event.id, True)
    out = [OfflineScan(code, earlier, exit=True)]
    (merged,) = await service.door.merge(event.id, "Out", "d", out)
    assert merged.outcome is Merged.NOT_INSIDE
    # online: in, out (on record), in again; the replay of a later upload keeps all three
    assert (await service.door.redeem(event.id, code, "In", "d")).admitted
    assert (await service.door.leave(event.id, code, "Out", "d")).reason is Reason.EXITED
    assert (await service.door.redeem(event.id, code, "In", "d")).admitted
    (late,) = await service.door.merge(event.id, "Late", "d", [OfflineScan(code, utcnow())])
    assert late.outcome is Merged.CONFLICT
    (conflict,) = await service.door.conflicts(event.id)
    assert (conflict.first_gate, conflict.second_gate) == ("In", "Late")


@pytest.mark.parametrize("exit_first", [False, True])
async def test_an_entry_and_an_exit_at_one_instant_are_both_kept(
    service: BookingCore, exit_first: bool
) -> None:
    """At one gate at one instant (a scanner's clock ticks in seconds), in and out are two
    scans, not one uploaded twice: replayed entry first, the holder is outside after them,
    and comes in again later."""
    event = await big_event(service, 100)
    await service.door.set_reentry(event.id, True)
    (code,) = await issue_directly(service, event, 1)
    at = utcnow() - timedelta(minutes=1)
    scans = [OfflineScan(code, at), OfflineScan(code, at, exit=True)]
    for scan in reversed(scans) if exit_first else scans:
        (merged,) = await service.door.merge(event.id, "A", "d", [scan])
        assert merged.outcome is not Merged.DUPLICATE
    (ticket,) = await rows(service.engine, tickets, tickets.c.event_id == event.id)
    assert (ticket.admitted_at, ticket.rearmed_at) == (None, at)
    assert [m.outcome for m in await service.door.merge(event.id, "A", "d", scans)] == [
        Merged.DUPLICATE, Merged.DUPLICATE
    ]  # fmt: skip
    assert (await service.door.redeem(event.id, code, "B", "d")).admitted
    assert await service.door.conflicts(event.id) == []


async def test_an_offline_time_far_ahead_counts_as_now(
    service: BookingCore, event: EventInfo
) -> None:
    (code,) = await bought(service, event, "alice", ["A-A-2"])
    before = utcnow()
    (merged,) = await service.door.merge(
        event.id, "A", "d", [OfflineScan(code, before + timedelta(hours=3))]
    )
    assert merged.outcome is Merged.ADMITTED
    (ticket,) = await rows(service.engine, tickets, tickets.c.code == code)
    assert before <= ticket.admitted_at <= utcnow()


async def test_scanners_are_minted_and_revoked(service: BookingCore, event: EventInfo) -> None:
    one = await service.scanners.mint("ipad-1", "North", event.id, "admin", 3600)
    two = await service.scanners.mint("ipad-2", "South", None, "admin", 7200)
    assert one.expires_at == one.created_at + timedelta(hours=1)
    assert (await service.scanners.get(two.id)).expires_at == two.created_at + timedelta(hours=2)
    assert await service.scanners.revocations() == {}
    revoked = await service.scanners.revoke(one.id)
    assert revoked.revoked_at is not None and revoked.token_version == 2
    assert await service.scanners.revocations() == {one.id: 2}
    assert [s.id for s in await service.scanners.list()] == [one.id, two.id]


async def test_a_new_secret_signs_with_a_new_key_and_old_codes_still_verify(
    service: BookingCore, event: EventInfo
) -> None:
    (old,) = await bought(service, event, "alice", ["A-A-1"])
    rotated = core.build(service.engine, TestGateway(service.engine), Keyring("a brand new secret"))
    await rotated.codes.ready()
    assert rotated.codes.keys.current_kid != old.split(".")[1]
    assert (await rotated.door.redeem(event.id, old, "G", "d")).reason is Reason.ADMITTED


async def test_an_exit_scan_of_a_cancelled_ticket_is_void_online_and_offline(
    service: BookingCore, event: EventInfo
) -> None:
    """The holder got in, then the order was cancelled: their exit re-arms nothing (the ticket
    cannot let anyone in again), and the scanner says ``void`` whether it was online or not."""
    hold = await service.holds.hold(event.id, "alice", ["A-A-1"])
    paid = rendered(await buy(service, "alice", hold.id, f"key-{hold.id}", VISA))
    (code,) = [t["code"] for t in paid["tickets"]]
    await service.door.set_reentry(event.id, True)
    assert (await service.door.redeem(event.id, code, "G", "d")).admitted
    await service.orders.cancel(paid["order_id"], None, Staff("root", "show moved"))
    assert (await service.door.leave(event.id, code, "G")).reason is Reason.VOID
    later = utcnow() + timedelta(seconds=1)
    (merged,) = await service.door.merge(event.id, "G", "d2", [OfflineScan(code, later, True)])
    assert merged.outcome is Merged.VOID
    assert (await service.door.redeem(event.id, code, "G", "d")).reason is Reason.VOID
