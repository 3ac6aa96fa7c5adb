"""Integration events leave the node: to durable queues and to the admins' webhooks (issue 17).

The booking core records each event in the outbox with its change (:mod:`booking.integration`);
:class:`IntegrationSender` runs beside the e-mail sender over the same outbox, by kind:

* ``integration_event`` → the event is stored on ``/queue/integration.orders`` (``order.*``) or
  ``/queue/integration.holds`` (``hold.*``), with the event id as the store's dedupe key, so a
  retry after a crash between storing and marking it sent stores nothing twice (a full queue,
  one nobody consumes, is skipped with a warning); then one ``webhook`` outbox row is added per
  active webhook that wants the event type.
* ``webhook`` → one POST of the event to one endpoint. A 2xx answer delivers it; anything else
  (or no answer within ``--webhook-timeout-s``) is retried by the outbox with its backoff
  (1 s, 2 s, 4 s … at most ``--retry-max-s``), until delivered. The outbox rows are the delivery
  log (``GET /api/admin/webhooks/{id}/deliveries``, and the admin console's Webhooks panel): each
  keeps the HTTP status of its latest answer in its payload.

Both carry the same JSON: ``{"id", "type", "occurred_at", "data"}``. A webhook POST is signed:
``X-Concert-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body with the webhook's secret>``.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohappyeyeballs import AddrInfoType

from booking.core import BookingCore
from booking.integration import (
    HTTP_STATUS,
    INTEGRATION_EVENT,
    WEBHOOK_DELIVERY,
    Webhook,
    queue_of,
)
from booking.outbox import SKIPPED, Handler, OutboxMessage
from server.errors import QueueFullError
from server.queues import QueueBroker
from server.settings import Settings

log = logging.getLogger(__name__)

#: Exit status of the crash injected by ``--fault-crash-before-publish`` (tests only), the same
#: as ``--fault-crash-after-charge``'s.
CRASH_EXIT = 70
SIGNATURE_HEADER = "X-Concert-Hub-Signature"
EVENT_ID_HEADER = "X-Concert-Hub-Event-Id"
EVENT_TYPE_HEADER = "X-Concert-Hub-Event-Type"
DELIVERY_HEADER = "X-Concert-Hub-Delivery"


class WebhookRefused(Exception):
    """The endpoint answered, but not with 2xx."""


def event_body(payload: dict[str, Any]) -> bytes:
    """The bytes of an event, as queued and as POSTed (compact JSON, keys in a fixed order)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def public_address(host: str) -> bool:
    """Whether ``host`` (an IP address) is one the internet routes: not loopback, private,
    link-local (the cloud's metadata service), multicast or reserved."""
    return ipaddress.ip_address(host.split("%", 1)[0]).is_global


def refuses(url: str) -> str | None:
    """Why a webhook may not go to ``url`` without ``--webhook-allow-private``, if its host
    says so already (an IP literal that is not public, or ``localhost``); a name is checked at
    the address it resolves to, when connecting (:func:`_public_socket`)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this machine: webhooks go to public addresses only"
    try:
        public = public_address(host)
    except ValueError:
        return None  # a name
    return None if public else f"{host} is not a public address: webhooks go to public ones only"


def _public_socket(addr_info: AddrInfoType) -> socket.socket:
    """The socket for one address a webhook's host resolved to, if it is public. Checked here,
    at the address actually connected to, so a name that resolves (or is rebound) to an
    internal address reaches nothing."""
    family, kind, proto, _, address = addr_info
    if not public_address(str(address[0])):
        raise OSError(  # the delivery log shows its strerror
            errno.EACCES,
            f"{address[0]} is not a public address: webhooks go to public addresses only "
            "(--webhook-allow-private)",
        )
    return socket.socket(family, kind, proto)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class IntegrationSender:
    def __init__(self, booking: BookingCore, queues: QueueBroker, settings: Settings) -> None:
        self.booking = booking
        self.queues = queues
        self.settings = settings
        self.handlers: dict[str, Handler] = {
            INTEGRATION_EVENT: self._publish,
            WEBHOOK_DELIVERY: self._post,
        }
        self._http: aiohttp.ClientSession | None = None
        #: The webhooks as read for one round of the outbox (the claim time of its messages).
        self._hooks: tuple[datetime | None, asyncio.Future[dict[int, Webhook]]] | None = None

    async def run(self) -> None:
        """Deliver due events until cancelled."""
        outbox = self.booking.outbox
        timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s)
        guarded = None if self.settings.webhook_allow_private else _public_socket
        connector = aiohttp.TCPConnector(socket_factory=guarded)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            self._http = http
            # A round's events are handled together: their queue messages are stored in one
            # batch (see _publish), and a slow webhook does not hold up the others.
            await outbox.deliver_forever(
                self.handlers, self.settings.outbox_poll_s, what="integration", together=True
            )

    async def _publish(self, message: OutboxMessage) -> None:
        payload = message.payload
        if self.settings.fault_crash_before_publish:
            log.critical("crash injected before publishing event %s", payload["id"])
            os._exit(CRASH_EXIT)
        headers = (
            ("content-type", "application/json"),
            ("event-id", str(payload["id"])),
            ("event-type", str(payload["type"])),
        )
        queue = queue_of(str(payload["type"]))
        # Stored before this handler's first await: the events of a round, handled together, are
        # stored in one batch and in their order.
        stored = self.queues.send(queue, headers, event_body(payload), dedupe=str(payload["id"]))
        try:
            await stored
        except QueueFullError:
            # Nobody consumes it: retrying would only keep the event (and more behind it) in
            # the outbox; the webhooks still get it.
            log.warning("event %s not queued: /queue/%s is full", payload["id"], queue)
        hooks = await self._webhooks(message)
        await self.booking.webhooks.fan_out(payload, tuple(hooks.values()))

    async def _webhooks(self, message: OutboxMessage) -> dict[int, Webhook]:
        """The registered webhooks, read once per round of the outbox: after the round's claim,
        so after the commit of every event in it (a webhook registered before an event's change
        hears of it), and without a read per event."""
        if (
            self._hooks is None
            or self._hooks[0] != message.claimed_at
            or message.claimed_at is None
        ):
            # One read for the round's handlers, which run together.
            self._hooks = (message.claimed_at, asyncio.ensure_future(self._read_webhooks()))
        return await asyncio.shield(self._hooks[1])

    async def _read_webhooks(self) -> dict[int, Webhook]:
        return {hook.id: hook for hook in await self.booking.webhooks.all()}

    async def _post(self, message: OutboxMessage) -> dict[str, Any] | None:
        payload = message.payload
        webhooks = self.booking.webhooks
        webhook_id = int(payload["webhook_id"])
        hook = (await self._webhooks(message)).get(webhook_id) or await webhooks.get(webhook_id)
        if not hook.active:
            return {**payload, SKIPPED: "the webhook was deactivated"}
        event = payload["event"]
        body = event_body(event)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(hook.secret, body),
            EVENT_ID_HEADER: str(event["id"]),
            EVENT_TYPE_HEADER: str(event["type"]),
            DELIVERY_HEADER: str(message.id),
        }
        assert self._http is not None
        try:
            # A redirect is an answer (not delivered), never followed: it would carry the
            # signed body to wherever the endpoint points, past the address check.
            posted = self._http.post(hook.url, data=body, headers=headers, allow_redirects=False)
            async with posted as response:
                status = response.status
        except Exception:
            # No answer this time: the log must not show an earlier attempt's status as this
            # one's.
            if payload.get(HTTP_STATUS) is not None:
                await webhooks.note_answer(message.id, {**payload, HTTP_STATUS: None})
            raise
        answered = {**payload, HTTP_STATUS: status}
        if not 200 <= status < 300:
            if payload.get(HTTP_STATUS) != status:
                await webhooks.note_answer(message.id, answered)
            raise WebhookRefused(f"{hook.url} answered HTTP {status}")
        return answered
