"""One typed settings object for a node, built from command-line flags and the environment.

Every field is a ``concert-hub serve`` flag (``max_send_rate`` → ``--max-send-rate``) and an
environment variable (``CONCERT_HUB_MAX_SEND_RATE``); a flag wins over the environment, which wins
over the default. The flag table in the README is this class. Code below the CLI receives the
object; nothing reads the environment deeper in.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from protocol.limits import Limits
from server.queue_store import QueuePolicy

ENV_PREFIX = "CONCERT_HUB_"


def _default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="bind address for HTTP/WS and STOMP/TCP")
    port: int = Field(8080, ge=0, le=65535, description="HTTP: REST, /ws, UI, /metrics, health")
    stomp_port: int = Field(61613, ge=0, le=65535, description="STOMP over raw TCP; 0 disables")
    database_url: str = Field(
        "sqlite+aiosqlite:///./concert-hub.db", description="SQLAlchemy async database URL"
    )
    db_pool_size: int = Field(
        50, ge=1, le=1000, description="database connections per node (MariaDB/MySQL)"
    )
    db_pool_timeout_s: float = Field(
        10,
        gt=0,
        le=300,
        description="longest wait for a database connection before a request is answered 503 "
        "with Retry-After (MariaDB/MySQL)",
    )
    redis_url: str = Field("", description="empty: in-process engine; redis://…: cluster mode")
    redis_pool_size: int = Field(
        64, ge=2, le=10000, description="Redis connections per node (cluster mode)"
    )
    redis_key_prefix: str = Field(
        "chub:",
        max_length=64,
        description="prefix of every Redis key and channel (several deployments may share one)",
    )
    secret: str = Field(
        "",
        description="key for tokens and ticket signatures; generated and kept beside the "
        "SQLite file in embedded mode, required otherwise",
    )
    previous_secrets: str = Field(
        "",
        description="comma-separated secrets --secret replaced: what they signed (tokens, "
        "admissions, order links, legacy ticket codes) is still accepted; nothing new is signed "
        "with them",
    )
    metrics_token: str = Field(
        "",
        description="bearer token GET /metrics requires (Authorization: Bearer …); empty: open",
    )
    demo: bool = Field(False, description="seed a demo event if the database is empty")
    node_id: str = Field(default_factory=_default_node_id, description="this node's name")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="processes serving this node's ports (SO_REUSEPORT), each a node "
        "<node-id>-w<i> of the cluster; more than 1 needs --redis-url",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    log_format: Literal["text", "json"] = Field("text", description="log line format")
    # SPEC §7 limits.
    max_frame_bytes: int = Field(65536, ge=256, description="largest client frame")
    max_headers: int = Field(64, ge=1, description="most headers in a client frame")
    max_header_bytes: int = Field(8192, ge=64, description="largest header section of a frame")
    max_connections: int = Field(20000, ge=1, description="most concurrent STOMP sessions")
    max_connections_per_ip: int = Field(
        1000, ge=0, description="most concurrent STOMP sessions from one client address; 0: no cap"
    )
    max_request_bytes: int = Field(
        1 << 20,
        ge=64 << 10,
        le=64 << 20,
        description="largest REST request body (413 over it)",
    )
    max_http_connections_per_ip: int = Field(
        1200,
        ge=0,
        description="most concurrent HTTP connections (WebSocket ones too) from one client "
        "address; 0: no cap",
    )
    max_sessions_per_user: int = Field(
        32,
        ge=0,
        le=100000,
        description="most concurrent STOMP sessions of one signed-in user on a node; 0: no cap",
    )
    trusted_proxies: str = Field(
        "",
        description="comma-separated addresses or networks of reverse proxies: a request or /ws "
        "handshake from one counts against the X-Real-IP it sets; empty: trust none",
    )
    max_subscriptions: int = Field(256, ge=1, description="most subscriptions per session")
    max_send_rate: float = Field(100, gt=0, description="client frames per second per session")
    http_idle_timeout_s: float = Field(
        15,
        gt=0,
        description="HTTP: time allowed for a request's head, from connect or the previous "
        "response (slow headers, idle keep-alive, WebSocket handshakes), and then for its body",
    )
    login_timeout_s: float = Field(10, gt=0, description="time allowed from connect to CONNECT")
    idle_timeout_s: float = Field(
        300,
        gt=0,
        description="close a session without heart-beats and subscriptions silent this long",
    )
    heartbeat_ms: Annotated[tuple[int, int], Field(description="server heart-beat offer sx,sy")] = (
        10000,
        10000,
    )
    slow_consumer_bytes: int = Field(
        1048576, ge=1024, description="unsent output that makes a session a slow consumer"
    )
    max_unacked: int = Field(4096, ge=1, description="unacknowledged client-ack deliveries")
    max_transactions: int = Field(16, ge=1, description="most open transactions per session")
    max_transaction_frames: int = Field(
        1024,
        ge=1,
        le=1_000_000,
        description="frames (SEND, ACK, NACK) one session's open transactions may buffer",
    )
    max_transaction_bytes: int = Field(
        1048576,
        ge=1024,
        description="bytes (bodies and headers) one session's open transactions may buffer",
    )
    no_anonymous: bool = Field(False, description="refuse CONNECT without credentials")
    ws_compress: bool = Field(False, description="offer permessage-deflate on /ws")
    # Booking (SPEC §5-§7).
    hold_ttl_s: int = Field(300, ge=10, le=3600, description="default seat hold lifetime")
    max_seats_per_user: int = Field(4, ge=1, le=100, description="default seats per user")
    max_held_seats_per_ip: int = Field(
        40, ge=0, le=100000, description="seats of one event held at once per client IP (0: no cap)"
    )
    max_held_seats_per_email: int = Field(
        8,
        ge=0,
        le=100000,
        description="seats of one event held at once per signed-in e-mail address (0: no cap)",
    )
    seat_tick_ms: int = Field(100, ge=10, le=10000, description="seat-map delta interval")
    seat_delivery_budget: int = Field(
        50_000,
        ge=0,
        le=10_000_000,
        description="seat-map MESSAGEs per second a node aims to write at most: past it the "
        "delta interval widens with the followers (0: never)",
    )
    seat_lease_ms: int = Field(
        1000,
        ge=100,
        le=60000,
        description="cluster: how long one node produces an event's deltas unless it renews",
    )
    seat_replay_deltas: int = Field(
        600,
        ge=1,
        le=100000,
        description="seat-map deltas each node keeps per event to answer resume-seq",
    )
    user_replay_count: int = Field(
        100,
        ge=0,
        le=10000,
        description="messages kept per user destination for replay after a reconnect",
    )
    user_replay_s: float = Field(
        300, ge=0, le=86400, description="how long a message to a user is kept for replay"
    )
    user_replay_max_bytes: int = Field(
        64 * 2**20,
        ge=0,
        description="one node: most memory user messages kept for replay take in all (the oldest "
        "of the least recently written destinations go first)",
    )
    position_interval_s: float = Field(
        2, gt=0, le=60, description="waiting-room position push interval"
    )
    admission_ttl_s: int = Field(600, ge=10, description="how long an admission lasts unused")
    payment_timeout_s: float = Field(10, gt=0, description="wait for the payment gateway")
    idempotency_ttl_s: int = Field(
        86400,
        ge=3600,
        le=30 * 86400,
        description="how long a checkout's Idempotency-Key replays its answer; then it is "
        "deleted, and the same key is a new request",
    )
    payment_latency_ms: int = Field(0, ge=0, description="simulated test-gateway latency")
    rest_rate_per_ip: float = Field(1000, gt=0, description="REST requests/s per client IP")
    rest_rate_per_user: float = Field(50, gt=0, description="REST requests/s per user")
    guest_rate_per_ip: float = Field(10, gt=0, description="guest identities/s per client IP")
    # The box office (issue 11): e-mail, sign-in, refunds.
    public_url: str = Field(
        "",
        max_length=200,
        description="the site's address in e-mailed links; empty: http://HOST:PORT",
    )
    smtp_host: str = Field(
        "", description="SMTP server; empty: e-mails are written as .eml files (--outbox-dir)"
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (upgrade, required), tls (implicit TLS), or none"
    )
    smtp_user: str = Field("", description="SMTP user name; empty: no authentication")
    smtp_password: str = Field("", description="SMTP password")
    smtp_timeout_s: float = Field(30, gt=0, le=600, description="SMTP connect/command timeout")
    mail_from: str = Field(
        "Concert-Hub <tickets@localhost>", max_length=254, description="the e-mails' From"
    )
    outbox_dir: str = Field(
        "",
        description="where e-mails go without --smtp-host; empty: a folder beside the SQLite "
        "file (<name>-outbox), else ./concert-hub-outbox",
    )
    outbox_poll_s: float = Field(
        30,
        gt=0,
        le=300,
        description="how often the outbox senders (e-mail, integration events) look for due "
        "messages unasked; a commit on this node wakes them at once, a retry when it is due",
    )
    outbox_lease_s: float = Field(
        60,
        ge=1,
        le=3600,
        description="how long a claimed e-mail or event is its node's; after "
        "a crash, how long until another sends it",
    )
    outbox_retention_s: int = Field(
        7 * 86400,
        ge=3600,
        le=3650 * 86400,
        description="how long a sent e-mail or integration event that no order or webhook "
        "lists is kept (an order's e-mails and a webhook's deliveries are kept)",
    )
    retry_max_s: float = Field(
        300, ge=1, le=86400, description="longest wait between retries of an e-mail or a refund"
    )
    sign_in_ttl_s: int = Field(900, ge=60, le=86400, description="sign-in link/code lifetime")
    hold_retention_s: int = Field(
        7 * 86400,
        ge=3600,
        le=3650 * 86400,
        description="how long a hold that ended without an order is kept after it lapsed, with "
        "its declined payment attempts (then GET /api/holds/{id} is 404)",
    )
    sign_in_retention_s: int = Field(
        86400,
        ge=3600,
        le=365 * 86400,
        description="how long a sign-in request and its e-mail are kept after they expired",
    )
    sign_in_max_attempts: int = Field(
        5,
        ge=1,
        le=20,
        description="wrong codes before a sign-in request's code is dead (its link still works)",
    )
    sign_in_rate_per_address: int = Field(
        5, ge=1, le=1000, description="sign-in e-mails per address per hour"
    )
    sign_in_rate_per_ip: float = Field(
        0.5, gt=0, description="sign-in requests and code attempts/s per client IP"
    )
    customer_token_ttl_s: int = Field(
        30 * 86400, ge=300, le=365 * 86400, description="lifetime of a signed-in customer's token"
    )
    # Point-to-point queues and integration events (issue 17).
    queue_max_length: int = Field(
        10000, ge=1, le=10_000_000, description="most messages a /queue/ holds (ready + unacked)"
    )
    queue_max_bytes: int = Field(
        16 << 20,
        ge=1024,
        description="most bytes of message bodies a /queue/ holds (ready + unacked)",
    )
    max_queues: int = Field(
        100,
        ge=1,
        description="most /queue/ destinations holding messages or having subscribers, for the "
        "whole deployment (the node's database, or the cluster's Redis)",
    )
    queue_max_backlog_bytes: int = Field(
        16 << 20,
        ge=65536,
        description="most bytes of /queue/ SENDs a node holds waiting to be stored; past it, "
        "SENDs to queues get ERROR queue store busy",
    )
    queue_max_age_s: float = Field(
        7 * 86400, gt=0, description="a /queue/ message older than this is dropped at the head"
    )
    queue_overflow: Literal["reject", "drop-head"] = Field(
        "reject", description="a SEND to a full /queue/: reject (ERROR queue full) or drop-head"
    )
    queue_prefetch: int = Field(
        100, ge=1, description="unacked messages per /queue/ subscription without prefetch-count"
    )
    queue_lease_s: float = Field(
        30,
        ge=1,
        le=3600,
        description="cluster: after this, a dead node's unacked messages "
        "are redelivered by another",
    )
    queue_poll_s: float = Field(
        1,
        gt=0,
        le=60,
        description="how often a /queue/ with subscribers looks for messages without being told",
    )
    webhook_allow_private: bool = Field(
        False,
        description="webhooks may go to loopback, private and link-local addresses (a box "
        "office system on the same network); off: public addresses only",
    )
    webhook_timeout_s: float = Field(
        10, gt=0, le=120, description="wait for a webhook endpoint's answer"
    )
    fault_crash_after_charge: bool = Field(
        False, description="testing only: exit right after a successful charge"
    )
    fault_crash_after_commit: bool = Field(
        False, description="testing only: exit right after an order committed, before answering"
    )
    fault_crash_before_publish: bool = Field(
        False, description="testing only: exit when an integration event is about to be published"
    )
    fault_refund_failures: int = Field(
        0, ge=0, description="testing only: the test gateway fails this many refunds first"
    )
    fault_hold_delay_file: str | None = Field(
        None,
        description="testing only: a file holding milliseconds every hold decision waits in its "
        "transaction (read live; absent or empty: none)",
    )
    outflow_hold_p99_ms: float = Field(
        250, gt=0, description="adaptive admission: budget for the hold decision p99"
    )
    outflow_pool_wait_ms: float = Field(
        50, gt=0, description="adaptive admission: budget for a database connection wait"
    )
    outflow_loop_lag_ms: float = Field(
        100, gt=0, description="adaptive admission: budget for the event-loop lag"
    )

    @field_validator("heartbeat_ms", mode="before")
    @classmethod
    def _parse_heartbeat(cls, value: object) -> object:
        if isinstance(value, str):
            parts = value.split(",")
            if len(parts) != 2:
                raise ValueError("expected two comma-separated integers, e.g. 10000,10000")
            return tuple(int(p) for p in parts)
        return value

    @field_validator("heartbeat_ms")
    @classmethod
    def _non_negative(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 0:
            raise ValueError("each interval is 0 (no beats) or a number of milliseconds")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database(cls, value: str) -> str:
        """A URL SQLAlchemy reads, of an installed asyncio driver: said at start, in one line,
        not as the engine's traceback."""
        try:
            dialect = make_url(value).get_dialect()
            dialect.import_dbapi()  # the driver is installed
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise ValueError(f"not a database URL this node can use ({exc})") from None
        if not dialect.is_async:
            raise ValueError(
                "needs an asyncio driver: sqlite+aiosqlite:///FILE or mysql+aiomysql://…"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str) -> str:
        if not value:
            return value
        try:
            parsed = urlsplit(value)
            parsed.port  # noqa: B018  (raises ValueError for a port that is not a number)
        except ValueError as exc:
            raise ValueError(f"not a Redis URL ({exc})") from None
        if parsed.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        _networks(value)
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return _networks(self.trusted_proxies)

    @property
    def stomp_limits(self) -> Limits:
        """The protocol core's per-connection limits: each is the setting of the same name."""
        return Limits(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Limits)})

    @property
    def queue_policy(self) -> QueuePolicy:
        return QueuePolicy(
            max_length=self.queue_max_length,
            max_bytes=self.queue_max_bytes,
            max_age_s=self.queue_max_age_s,
            overflow=self.queue_overflow,
            lease_s=self.queue_lease_s,
            max_queues=self.max_queues,
            max_backlog_bytes=self.queue_max_backlog_bytes,
        )

    @property
    def previous_secret_list(self) -> tuple[str, ...]:
        return tuple(s for s in (p.strip() for p in self.previous_secrets.split(",")) if s)

    @property
    def embedded(self) -> bool:
        """SQLite and no Redis: one self-contained node, the out-of-the-box mode."""
        return self.database_url.startswith("sqlite") and not self.redis_url

    @property
    def anonymous_allowed(self) -> bool:
        return not self.no_anonymous

    @property
    def site_url(self) -> str:
        """Where e-mailed links point (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(value: str) -> tuple[IPNetwork, ...]:
    """``10.0.0.0/8, 127.0.0.1`` → networks; ValueError names a bad entry."""
    found = []
    for part in value.split(","):
        if part.strip():
            try:
                found.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"not an address or network: {part.strip()!r}") from None
    return tuple(found)


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()
