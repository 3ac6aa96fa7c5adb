"""The booking core of one node, assembled: its services, each holding one concern.

| service | concern |
|---|---|
| :class:`~booking.inventory.Inventory` | events and seat availability in memory; seat changes |
| :class:`~booking.holds.SeatHolds` | placing, releasing and expiring holds |
| :class:`~booking.checkout.Checkout` | payment and ticket issuance, idempotent; recovery |
| :class:`~booking.orders.OrderDesk` | orders after checkout, cancellation, ticket checks |
| :class:`~booking.admissions.Admissions` | the waiting room's policy and admission tokens |
| :class:`~booking.customers.Customers` | customers by e-mail: one-time sign-in, token revocation |
| :class:`~booking.outbox.Outbox` | messages written with their change, delivered once each |
| :class:`~booking.refunds.Refunds` | refunds of cancelled orders, retried until they succeed |
| :class:`~booking.retention.Retention` | forgetting old keys, sign-ins, sent mail, ended holds |
| :class:`~booking.staff.BoxOffice` | the staff's order desk: search, override, resend, audit |
| :class:`~booking.checkin.DoorCheckIn` | door check-in: redemption once, offline merge, progress |
| :class:`~booking.scanners.Scanners` | door scanners and their revocable tokens |
| :class:`~booking.ticket_keys.TicketCodes` | ticket codes: Ed25519 keys, rotation, legacy HMAC |

:func:`build` wires them the one way the server, the tests and the benchmarks all use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from booking.admissions import Admissions, AdmissionSigner
from booking.checkin import DoorCheckIn
from booking.checkout import Checkout
from booking.customers import Customers, SignInPolicy
from booking.holds import HoldCaps, SeatHolds
from booking.hooks import BookingHooks
from booking.integration import Webhooks
from booking.inventory import EventDefaults, Inventory
from booking.keyring import Keyring
from booking.orders import OrderDesk, OrderKeys
from booking.outbox import Outbox
from booking.payments import PaymentProvider
from booking.refunds import Refunds
from booking.retention import Retention, RetentionPolicy
from booking.scanners import Scanners
from booking.staff import BoxOffice
from booking.ticket_keys import TicketCodes, TicketKeys
from booking.tickets import TicketSigner
from booking.waiting_room import InProcessWaitingRoom, WaitingRoom


@dataclass(frozen=True, slots=True)
class BookingPolicy:
    """Defaults and knobs from the node's settings."""

    hold_ttl_s: int = 300
    max_seats_per_user: int = 4
    #: Seats held at once per event per client IP / verified e-mail address (0: no cap).
    hold_caps: HoldCaps = field(default_factory=HoldCaps)
    payment_timeout_s: float = 10.0
    admission_ttl_s: int = 600
    #: The longest wait between two attempts of a message or a refund that keeps failing.
    retry_max_s: float = 300.0
    #: How long a claimed outbox message is left to its sender before another may take it.
    outbox_lease_s: float = 60.0
    sign_in: SignInPolicy = field(default_factory=SignInPolicy)
    #: How long idempotency keys, spent sign-in requests, sent messages and ended holds are kept.
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)


@dataclass(frozen=True, slots=True)
class BookingCore:
    engine: AsyncEngine
    inventory: Inventory
    holds: SeatHolds
    checkout: Checkout
    orders: OrderDesk
    admissions: Admissions
    customers: Customers
    outbox: Outbox
    refunds: Refunds
    box_office: BoxOffice
    door: DoorCheckIn
    scanners: Scanners
    codes: TicketCodes
    #: Webhook endpoints of integration events (issue 17).
    webhooks: Webhooks
    retention: Retention
    hooks: BookingHooks = field(default_factory=BookingHooks)


def build(
    engine: AsyncEngine,
    provider: PaymentProvider,
    keyring: Keyring,
    *,
    policy: BookingPolicy | None = None,
    waiting_room: WaitingRoom | None = None,
    hooks: BookingHooks | None = None,
) -> BookingCore:
    """The booking core over ``engine``, signing tickets, admissions, order links and sign-ins
    with ``keyring``'s secret (and accepting its previous ones)."""
    policy = policy or BookingPolicy()
    hooks = hooks or BookingHooks()
    inventory = Inventory(engine, EventDefaults(policy.hold_ttl_s, policy.max_seats_per_user))
    signer = TicketCodes(TicketKeys(engine, keyring), TicketSigner(keyring))
    admissions = Admissions(
        inventory,
        waiting_room if waiting_room is not None else InProcessWaitingRoom(),
        AdmissionSigner(keyring),
        policy.admission_ttl_s,
        hooks,
    )
    outbox = Outbox(engine, policy.retry_max_s, lease=timedelta(seconds=policy.outbox_lease_s))
    refunds = Refunds(engine, provider, hooks, policy.payment_timeout_s, policy.retry_max_s)
    holds = SeatHolds(
        engine, inventory, admissions.signer, hooks, policy.hold_caps, queue=admissions
    )
    orders = OrderDesk(engine, inventory, refunds, outbox, signer, OrderKeys(keyring), hooks,
                       returns=holds.offer_returned)  # fmt: skip
    return BookingCore(
        engine=engine,
        inventory=inventory,
        holds=holds,
        checkout=Checkout(
            engine, provider, signer, inventory, admissions, hooks, outbox,
            policy.payment_timeout_s,
        ),
        orders=orders,
        admissions=admissions,
        customers=Customers(engine, keyring, outbox, policy.sign_in),
        outbox=outbox,
        refunds=refunds,
        box_office=BoxOffice(engine, orders, refunds, outbox),
        door=DoorCheckIn(engine, inventory, signer, hooks),
        scanners=Scanners(engine, inventory),
        codes=signer,
        webhooks=Webhooks(engine),
        retention=Retention(engine, policy.retention),
        hooks=hooks,
    )  # fmt: skip
