"""The waiting room knows the sale: no admission past the seats left, waiting users read
``paused``/``sold_out``, and seats that come back are offered to the next users in line (both
implementations)."""

from __future__ import annotations

from booking.waiting_room import ADMITTED, PAUSED, SELLING, SOLD_OUT, WAITING, Policy
from tests.waiting_room.conftest import RoomFactory

T0 = 1_000_000.0


def policy(sale: str = SELLING, seats: int | None = None, rate: float = 1000,
           cap: int = 10**6) -> Policy:  # fmt: skip
    return Policy(open=True, paused=False, rate_per_s=rate, max_active=cap,
                  admission_ttl_s=600, sale=sale, seats=seats)  # fmt: skip


async def test_no_more_shoppers_are_admitted_than_seats_are_left(
    make_room: RoomFactory, event_id: int
) -> None:
    room = make_room(None)
    await room.admit(event_id, policy(), T0 - 100)  # open the sale
    users = [f"u{i:03d}" for i in range(20)]
    for user in users:
        await room.join(event_id, user, policy())
    # Five seats left: five shoppers, whatever the rate allows.
    assert await room.admit(event_id, policy(seats=5), T0) == users[:5]
    # Still five seats (the shoppers hold nothing yet): nobody more.
    assert await room.admit(event_id, policy(seats=5), T0 + 1) == []
    # Sold out behind them: nobody more either; the rest stay in line, told so.
    assert await room.admit(event_id, policy(PAUSED, seats=0), T0 + 2) == []
    rest = await room.positions(event_id, users[5:], policy(PAUSED, seats=0))
    assert [p.state for p in rest] == [PAUSED] * 15
    assert [p.position for p in rest] == list(range(1, 16))
    assert all(p.eta_seconds is None for p in rest)
    gone = await room.positions(event_id, users[5:], policy(SOLD_OUT, seats=0))
    assert {p.state for p in gone} == {SOLD_OUT}
    again = await room.positions(event_id, users, policy(seats=3))
    assert [p.state for p in again] == [ADMITTED] * 5 + [WAITING] * 15


async def test_seats_that_come_back_admit_the_next_users_in_line_whatever_the_rate(
    make_room: RoomFactory, event_id: int
) -> None:
    room = make_room(None)
    await room.admit(event_id, policy(), T0 - 100)
    users = [f"u{i:03d}" for i in range(10)]
    for user in users:
        await room.join(event_id, user, policy())
    slow = policy(PAUSED, seats=0, rate=0.001, cap=1)
    assert await room.admit(event_id, slow, T0) == []
    # Three seats came back: the next three in line, at once, beyond the cap and the rate.
    assert await room.offer(event_id, 3, slow, T0 + 1) == users[:3]
    assert await room.offer(event_id, 2, slow, T0 + 2) == users[3:5]
    standing = await room.positions(event_id, users, slow)
    assert [p.state for p in standing] == [ADMITTED] * 5 + [PAUSED] * 5
    assert standing[5].position == 1
    # More seats than users waiting: everyone left, no more.
    assert await room.offer(event_id, 50, slow, T0 + 3) == users[5:]
    assert await room.offer(event_id, 1, slow, T0 + 4) == []
    assert (await room.stats(event_id)).active == 10
