"""The booking core of one node, assembled: its services, each holding one concern.

| service | concern |
|---|---|
| :class:`~booking.inventory.Inventory` | events and seat availability in memory; seat changes |
| :class:`~booking.holds.SeatHolds` | placing, releasing and expiring holds |
| :class:`~booking.checkout.Checkout` | payment and ticket issuance, idempotent; recovery |
| :class:`~booking.orders.OrderDesk` | orders after checkout, cancellation, ticket checks |
| :class:`~booking.admissions.Admissions` | the waiting room's policy and admission tokens |

:func:`build` wires them the one way the server, the tests and the benchmarks all use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from booking.admissions import Admissions, AdmissionSigner
from booking.checkout import Checkout
from booking.holds import SeatHolds
from booking.hooks import BookingHooks
from booking.inventory import EventDefaults, Inventory
from booking.orders import OrderDesk
from booking.payments import PaymentProvider
from booking.tickets import TicketSigner
from booking.waiting_room import InProcessWaitingRoom, WaitingRoom


@dataclass(frozen=True, slots=True)
class BookingPolicy:
    """Defaults and knobs from the node's settings."""

    hold_ttl_s: int = 300
    max_seats_per_user: int = 4
    payment_timeout_s: float = 10.0
    admission_ttl_s: int = 600


@dataclass(frozen=True, slots=True)
class BookingCore:
    engine: AsyncEngine
    inventory: Inventory
    holds: SeatHolds
    checkout: Checkout
    orders: OrderDesk
    admissions: Admissions
    hooks: BookingHooks = field(default_factory=BookingHooks)


def build(
    engine: AsyncEngine,
    provider: PaymentProvider,
    secret: str,
    *,
    policy: BookingPolicy | None = None,
    waiting_room: WaitingRoom | None = None,
    hooks: BookingHooks | None = None,
) -> BookingCore:
    """The booking core over ``engine``, signing tickets and admissions with ``secret``."""
    policy = policy or BookingPolicy()
    hooks = hooks or BookingHooks()
    inventory = Inventory(engine, EventDefaults(policy.hold_ttl_s, policy.max_seats_per_user))
    signer = TicketSigner(secret)
    admissions = Admissions(
        inventory,
        waiting_room if waiting_room is not None else InProcessWaitingRoom(),
        AdmissionSigner(secret),
        policy.admission_ttl_s,
        hooks,
    )
    return BookingCore(
        engine=engine,
        inventory=inventory,
        holds=SeatHolds(engine, inventory, admissions.signer, hooks),
        checkout=Checkout(
            engine, provider, signer, inventory, admissions, hooks, policy.payment_timeout_s
        ),
        orders=OrderDesk(engine, inventory, provider, signer, hooks),
        admissions=admissions,
        hooks=hooks,
    )
