"""Tables of the booking core (SQLAlchemy Core), the same on MariaDB/MySQL and SQLite.

Double-selling is impossible at the database, not merely checked by the application:

* A seat is held or sold only through a *conditional* ``UPDATE seats … WHERE`` the seat is
  neither sold nor held by an unexpired hold (:mod:`booking.holds`). InnoDB evaluates that
  condition on the latest committed row under a row lock and SQLite serialises writers, so of two
  transactions racing for a seat, the second matches zero rows and fails.
* ``tickets`` has a unique index on ``(event_id, active_seat_id)``; a ticket's
  ``active_seat_id`` is its seat while valid and NULL once voided, so two valid tickets for one seat
  cannot be committed, whatever the code above it does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.sql.schema import SchemaItem

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: Instants are naive UTC with microseconds on every backend (MariaDB's DATETIME defaults to
#: whole seconds, which would blur hold expiry); :mod:`booking.clock` converts at the edges.
UTC = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
ID = String(40)
USER = String(128)
SEAT_ID = String(32)
#: An e-mail address (RFC 5321 caps a forward path at 254 characters), stored lower-cased.
EMAIL = String(254)
#: A /queue/ name, compared with its case (MySQL/MariaDB compare text without it by default).
QUEUE_NAME = String(128).with_variant(
    mysql.VARCHAR(128, collation="utf8mb4_bin"), "mysql", "mariadb"
)


def _table(name: str, *parts: SchemaItem, **options: Any) -> Table:
    """A table of :data:`metadata`; ``options`` are dialect options (``sqlite_autoincrement``)."""
    return Table(name, metadata, *parts, **options)


def _of_event() -> Column[int]:
    return Column("event_id", Integer, ForeignKey("events.id"), nullable=False)


def _owned_by_user() -> tuple[Column[str], Column[int], Column[str]]:
    """The id, event and user of a row a user owns for an event (a hold, an order)."""
    return Column("id", ID, primary_key=True), _of_event(), _user()


def _serial_id() -> Column[int]:
    """A growing integer key (SQLite autoincrements only an INTEGER primary key)."""
    return Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )


def _user() -> Column[str]:
    return Column("user_id", USER, nullable=False)


def _money() -> tuple[Column[int], Column[str]]:
    """An amount in minor units (cents) and its ISO 4217 currency."""
    return (
        Column("amount_cents", Integer, nullable=False),
        Column("currency", String(3), nullable=False),
    )


def _status() -> Column[str]:
    """A row's state: one of a few short words, listed where the table declares it."""
    return Column("status", String(16), nullable=False)


def _created_at() -> Column[datetime]:
    """When the row was written."""
    return Column("created_at", UTC, nullable=False)


def _timestamps() -> tuple[Column[datetime], Column[datetime]]:
    """When the row was written, and when it last changed."""
    return _created_at(), Column("updated_at", UTC, nullable=False)


def _retry_schedule() -> tuple[Column[int], Column[datetime], Column[str]]:
    """Work retried until it succeeds (an outbox message, a refund): the attempts so far, when
    the next is due, and why the last one failed."""
    return (
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", UTC, nullable=False),
        Column("last_error", Text, nullable=True),
    )


events = _table(
    "events",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("venue", String(200), nullable=False),
    Column("starts_at", UTC, nullable=False),
    Column("sale_opens_at", UTC, nullable=False),
    Column("sale_closes_at", UTC, nullable=False),
    # draft | on_sale | paused | closed
    _status(),
    Column("waiting_room", Boolean, nullable=False, default=False),
    Column("admission_rate", Float, nullable=False, default=10.0),
    Column("max_active_shoppers", Integer, nullable=False, default=500),
    # fixed | adaptive (the rate follows the booking core's health between min and max)
    Column("admission_mode", String(16), nullable=False, default="fixed", server_default="fixed"),
    Column("admission_rate_min", Float, nullable=False, default=1.0, server_default="1"),
    Column("admission_rate_max", Float, nullable=False, default=100.0, server_default="100"),
    # leading zero bits a join's proof of work must have (0: no proof asked)
    Column("pow_difficulty", Integer, nullable=False, default=0, server_default="0"),
    Column("hold_ttl_s", Integer, nullable=False),
    Column("max_seats_per_user", Integer, nullable=False),
    _created_at(),
    # Refund policy: a buyer may cancel until this many hours before the start; NULL: buyers
    # may not cancel at all (staff still may).
    Column("refund_cutoff_hours", Integer, nullable=True),
    # Where the venue is (an IANA name): tickets, e-mails and pages give the start in its time.
    Column("timezone", String(64), nullable=False, default="UTC", server_default="UTC"),
)

price_tiers = _table(
    "price_tiers",
    Column("id", Integer, primary_key=True, autoincrement=True),
    _of_event(),
    Column("name", String(64), nullable=False),
    Column("price_cents", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    UniqueConstraint("event_id", "name"),
)

seats = _table(
    "seats",
    Column("event_id", Integer, ForeignKey("events.id"), primary_key=True),
    Column("seat_id", SEAT_ID, primary_key=True),
    Column("section", String(32), nullable=False),
    Column("row", String(8), nullable=False),
    Column("number", Integer, nullable=False),
    Column("tier_id", Integer, ForeignKey("price_tiers.id"), nullable=False),
    # Place in the layout as the admin gave it (sections, then rows, then seats), which
    # alphabetical order of ids would lose (BALCONY before STALLS, row AA before B).
    Column("ordinal", Integer, nullable=False, server_default="0"),
    Column("blocked", Boolean, nullable=False, default=False),
    # NULL, "accessible" (a wheelchair space) or "companion" (a seat beside one).
    Column("access", String(16), nullable=True),
    # Held while hold_id is set and hold_expires_at is in the future.
    Column("hold_id", ID, nullable=True),
    Column("hold_user", USER, nullable=True),
    Column("hold_expires_at", UTC, nullable=True),
    # Sold while order_id is set.
    Column("order_id", ID, nullable=True),
    Index(None, "hold_id"),
    Index(None, "event_id", "hold_expires_at"),
)

holds = _table(
    "holds",
    *_owned_by_user(),
    Column("seat_ids", Text, nullable=False),  # JSON list, the record of what was held
    Column("seat_count", Integer, nullable=False),
    *_money(),
    # active | released | expired | purchased
    _status(),
    _created_at(),
    Column("expires_at", UTC, nullable=False),
    # A checkout of this hold is under way until then (one charge per hold at a time).
    Column("checkout_until", UTC, nullable=True),
    # Who placed it, for the per-client caps on seats held at once (NULL: not known).
    Column("client_ip", String(64), nullable=True),
    Column("holder_email", EMAIL, nullable=True),
    Index(None, "event_id", "user_id", "status"),
    Index(None, "status", "expires_at"),
    Index(None, "event_id", "client_ip", "status"),
    Index(None, "event_id", "holder_email", "status"),
)

#: One row per (event, holder) that has held seats: a hold locks its holder's rows first (user,
#: e-mail address, client IP), so that of two holds by one holder the second counts the first's
#: seats (:mod:`booking.holds`). ``touched_at`` lets the reaper delete rows nobody needs.
hold_locks = _table(
    "hold_locks",
    Column("event_id", Integer, primary_key=True, autoincrement=False),
    Column("subject", String(320), primary_key=True),
    Column("touched_at", UTC, nullable=False),
    Index(None, "touched_at"),
)

orders = _table(
    "orders",
    *_owned_by_user(),
    Column("hold_id", ID, nullable=False, unique=True),
    # paid | cancelled
    _status(),
    *_money(),
    Column("payment_id", ID, nullable=False),
    _created_at(),
    Column("cancelled_at", UTC, nullable=True),
    # Where the confirmation goes; a customer signed in with this address sees the order.
    Column("email", EMAIL, nullable=True),
    # Renews the e-mailed link's key when staff correct the address (booking.orders.OrderKeys);
    # NULL: the key derived from the order id alone.
    Column("link_nonce", String(32), nullable=True),
    Index(None, "event_id", "user_id"),
    Index(None, "user_id"),
    Index(None, "email"),
)

payments = _table(
    "payments",
    Column("id", ID, primary_key=True),
    _user(),
    Column("hold_id", ID, nullable=False),
    Column("order_id", ID, nullable=True),
    *_money(),
    Column("provider", String(32), nullable=False),
    Column("provider_ref", String(128), nullable=True),
    # pending (charge under way) | charged | declined | failed | refunding (recovery under
    # way) | refunded | refund_pending (a cancelled order's refund, see ``refunds``) |
    # refund_manual (staff handle it outside the gateway)
    _status(),
    *_timestamps(),
    Index(None, "status", "updated_at"),
    # Retention keeps a hold a payment names (booking.retention).
    Index(None, "hold_id"),
)

tickets = _table(
    "tickets",
    # Ed25519 codes (booking.ticket_keys) run to about 170 characters; legacy HMAC ones to 160.
    Column("code", String(255), primary_key=True),
    Column("order_id", ID, ForeignKey("orders.id"), nullable=False),
    _of_event(),
    Column("seat_id", SEAT_ID, nullable=False),
    _user(),
    # The seat while the ticket is valid, NULL once void: the unique index below is the
    # database's own guarantee of one valid ticket per seat.
    Column("active_seat_id", SEAT_ID, nullable=True),
    _status(),  # valid | void
    Column("issued_at", UTC, nullable=False),
    # Door check-in (booking.checkin): when and where the holder was last let in, NULL while
    # not inside (never scanned, or an exit scan re-armed it). Redemption is one conditional
    # UPDATE … WHERE admitted_at IS NULL.
    Column("admitted_at", UTC, nullable=True),
    Column("admitted_gate", String(64), nullable=True),
    # The last exit scan: redemptions before it belong to an earlier visit.
    Column("rearmed_at", UTC, nullable=True),
    # A void ticket's successor, issued when staff sent the order to a corrected address: the
    # order shows the successor, and the old code stays void for the door.
    Column("replaced_by", String(255), nullable=True),
    UniqueConstraint("event_id", "active_seat_id"),
    Index(None, "order_id"),
    Index(None, "event_id", "user_id"),
)

idempotency_keys = _table(
    "idempotency_keys",
    Column("user_id", USER, primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    _status(),  # in_progress | done
    Column("response_status", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    _created_at(),
    # Keys older than the TTL are deleted, oldest first (booking.retention).
    Index(None, "created_at"),
)

#: The built-in test payment gateway's own ledger. A real gateway keeps this on its side; the
#: simulated one keeps it in the same database so that charges and refunds can be audited by
#: the tests, including across a crash of the server.
test_gateway_charges = _table(
    "test_gateway_charges",
    _serial_id(),
    Column("payment_id", ID, nullable=False, unique=True),
    *_money(),
    _status(),  # charged | refunded
    _created_at(),
)

#: Customers known by e-mail (:mod:`booking.customers`). A customer's tokens carry the
#: ``token_version`` they were issued under; raising it revokes every older token.
customers = _table(
    "customers",
    Column("id", ID, primary_key=True),
    Column("email", EMAIL, nullable=False, unique=True),
    Column("token_version", Integer, nullable=False, default=1),
    Column("tokens_revoked_at", UTC, nullable=True),
    _created_at(),
    Column("signed_in_at", UTC, nullable=True),
    Index(None, "tokens_revoked_at"),
)

#: One-time sign-in requests: a link secret and a 6-digit code, stored only as hashes.
sign_ins = _table(
    "sign_ins",
    Column("id", ID, primary_key=True),
    Column("email", EMAIL, nullable=False),
    Column("link_hash", String(64), nullable=False, unique=True),
    Column("code_hash", String(64), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("client_ip", String(64), nullable=False),
    _created_at(),
    Column("expires_at", UTC, nullable=False),
    Column("used_at", UTC, nullable=True),
    Index(None, "email", "created_at"),
    # Requests long expired are deleted, oldest first (booking.retention).
    Index(None, "expires_at"),
)

#: The transactional outbox (:mod:`booking.outbox`): messages written in the same transaction
#: as the change they announce, sent afterwards by a background sender, each once.
outbox = _table(
    "outbox",
    _serial_id(),
    Column("kind", String(32), nullable=False),
    # What the message is about (an order id), for the order desk's list of deliveries.
    Column("ref", String(64), nullable=True),
    Column("payload", Text, nullable=False),  # JSON
    Column("dedupe_key", String(191), nullable=False, unique=True),
    *_retry_schedule(),
    Column("sent_at", UTC, nullable=True),
    _created_at(),
    Index(None, "sent_at", "next_attempt_at"),
    Index(None, "ref"),
    # Sent messages that nothing lists (no ref) are deleted after a while (booking.retention).
    Index(None, "ref", "sent_at"),
)

#: Refunds of cancelled orders (:mod:`booking.refunds`), retried until the gateway confirms
#: or staff take one over (``manual``).
refunds = _table(
    "refunds",
    Column("id", ID, primary_key=True),
    Column("order_id", ID, ForeignKey("orders.id"), nullable=False, unique=True),
    Column("payment_id", ID, nullable=False),
    *_money(),
    # pending | refunded | manual
    _status(),
    *_retry_schedule(),
    Column("requested_by", USER, nullable=False),
    *_timestamps(),
    Index(None, "status", "next_attempt_at"),
)

#: What staff did (:mod:`booking.audit`): who, what, to what, when and why.
audit_log = _table(
    "audit_log",
    _serial_id(),
    Column("at", UTC, nullable=False),
    Column("actor", USER, nullable=False),
    Column("action", String(48), nullable=False),
    Column("target", String(64), nullable=False),
    Column("reason", Text, nullable=True),
    Column("details", Text, nullable=True),  # JSON
    Index(None, "target"),
    Index(None, "at"),
)


#: Ed25519 keys that sign ticket codes (:mod:`booking.ticket_keys`); the private key is sealed
#: (AES-GCM under a key derived from the node's secret).
ticket_keys = _table(
    "ticket_keys",
    Column("kid", String(16), primary_key=True),
    Column("public_key", String(64), nullable=False),
    Column("private_key", Text, nullable=False),
    _created_at(),
    Column("retired_at", UTC, nullable=True),
)

#: Every admission the door let through (:mod:`booking.checkin`): online ones as they happen,
#: offline ones when their scanner syncs. Of a ticket's redemptions in one visit, the one its
#: ``tickets`` row names is the winner; any other is a conflict (two people got in).
redemptions = _table(
    "redemptions",
    _serial_id(),
    _of_event(),
    Column("code", String(255), nullable=False),
    Column("gate", String(64), nullable=False),
    Column("device", ID, nullable=False),
    Column("at", UTC, nullable=False),
    Column("offline", Boolean, nullable=False, default=False),
    # An exit scan (re-entry events): it re-armed the ticket.
    Column("exit", Boolean, nullable=False, default=False, server_default="0"),
    # The same redemption uploaded twice is one row; an entry and an exit at one instant are
    # two.
    UniqueConstraint("code", "gate", "at", "exit"),
    Index(None, "event_id", "at"),
)

#: Door scanners (:mod:`booking.checkin`): a device at a gate, holding a token of role
#: ``scanner``; revoking raises ``token_version`` as a customer's sign-out everywhere does.
scanners = _table(
    "scanners",
    Column("id", ID, primary_key=True),
    Column("device", String(64), nullable=False),
    Column("gate", String(64), nullable=False),
    # NULL: every event's door.
    Column("event_id", Integer, ForeignKey("events.id"), nullable=True),
    Column("token_version", Integer, nullable=False, default=1),
    Column("created_by", USER, nullable=False),
    _created_at(),
    # When the token it was minted with expires (NULL: minted before this was recorded).
    Column("expires_at", UTC, nullable=True),
    Column("revoked_at", UTC, nullable=True),
)

#: Per-event door settings (no row: the defaults).
checkin_settings = _table(
    "checkin_settings",
    Column("event_id", Integer, ForeignKey("events.id"), primary_key=True),
    # An exit scan re-arms a ticket for re-entry.
    Column("reentry", Boolean, nullable=False, default=False),
)

#: A message body as stored, base64 (the MariaDB driver cannot bind bytes): up to 16 MiB
#: (MEDIUMTEXT on MariaDB; frames are far smaller).
BODY = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

#: Messages of ``/queue/{name}`` destinations on a single node (issue 17;
#: ``server/backplane/sql_queue.py``), kept until a consumer acknowledges them. Cluster mode keeps
#: them in Redis streams instead. A row's id is its STOMP ``message-id`` (and its ack ids), so no
#: id may come back once its row is deleted: SQLite reuses the largest rowid after it is deleted
#: unless the table has AUTOINCREMENT (MariaDB's AUTO_INCREMENT never goes back while it runs).
queue_messages = _table(
    "queue_messages",
    _serial_id(),
    # Compared exactly, case included, as the broker and Redis compare queue names (MariaDB's
    # default collation would not: "Integration.orders" was "integration.orders" there).
    Column("queue", QUEUE_NAME, nullable=False),
    Column("headers", Text, nullable=False),  # JSON [[name, value], ...]
    Column("body", BODY, nullable=False),  # base64
    # An event id, say: a message with a key already stored is not stored again.
    Column("dedupe_key", String(191), nullable=True, unique=True),
    _created_at(),
    Index(None, "queue", "id"),
    sqlite_autoincrement=True,
)

#: Webhook endpoints integration events are posted to (issue 17; ``server/integrations.py``).
webhooks = _table(
    "webhooks",
    _serial_id(),
    Column("url", String(500), nullable=False),
    #: The HMAC-SHA256 key of the signature header.
    Column("secret", String(128), nullable=False),
    #: Comma-separated event types, or ``*`` for every type.
    Column("events", String(255), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_by", USER, nullable=False),
    _created_at(),
)
