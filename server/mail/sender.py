"""The outbox's e-mail sender: for each due message, build the e-mail its kind calls for from
the current record and hand it to the transport (SMTP or the ``.eml`` folder).

It runs as one of the node's background tasks: it delivers whatever is due, then waits for the
next poll (``--outbox-poll-s``) or for a wake-up from a commit on this node, whichever comes
first; a message that fails is retried by the outbox with a backoff. Handlers read the order
when they send, so a confirmation sent late (SMTP was down) still shows the order as it is.

A confirmation (its PDF and a QR code per seat) takes tens of milliseconds of CPU to build, five
times what the checkout that queued it cost the node. Built on the event loop, or in a thread
sharing its interpreter lock, it made holds and checkouts wait mid-sale; so it is built in a
process of its own (one, started on the first confirmation, at a lower CPU priority: booking
first, e-mail when there is time).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import multiprocessing
import os
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

from booking.catalog import EventInfo
from booking.core import BookingCore
from booking.customers import SIGN_IN
from booking.orders import ORDER_CANCELLED, ORDER_CONFIRMATION, Order
from booking.outbox import SKIPPED, Handler, OutboxMessage
from server import ticket_pdf
from server.mail import messages
from server.mail.transport import MailTransport
from server.settings import Settings

log = logging.getLogger(__name__)


def order_link(settings: Settings, order_id: str, key: str) -> str:
    """The order page in the browser UI, opened with the order's key (kept in the fragment, so
    it reaches no server log)."""
    return f"{settings.site_url}/#/orders/{order_id}?key={key}"


def sign_in_link(settings: Settings, secret: str) -> str:
    return f"{settings.site_url}/#/signin/{secret}"


#: How much lower the renderer process runs than the node (``os.nice``).
RENDERER_NICENESS = 10


def _renderer_started() -> None:
    with contextlib.suppress(OSError):
        os.nice(RENDERER_NICENESS)


def build_confirmation(
    letter: messages.Letter, order: Order, event: EventInfo, link: str
) -> EmailMessage:
    """The confirmation e-mail with its PDF (run in the renderer process)."""
    pdf = ticket_pdf.render(order, event)
    return messages.order_confirmation(letter, order, event, link, pdf)


#: What a handler keeps on record in place of the message's payload (:data:`Handler`).
Kept = dict[str, Any] | None
#: Sends one e-mail about an order: to whom, the order, its event, its link.
_OrderLetter = Callable[[messages.Letter, Order, EventInfo, str], Awaitable[None]]


class MailSender:
    def __init__(self, booking: BookingCore, transport: MailTransport, settings: Settings) -> None:
        self.booking = booking
        self.transport = transport
        self.settings = settings
        self._renderer: concurrent.futures.ProcessPoolExecutor | None = None
        self.handlers: dict[str, Handler] = {
            SIGN_IN: self._sign_in,
            ORDER_CONFIRMATION: functools.partial(self._about_order, send=self._confirmation),
            ORDER_CANCELLED: functools.partial(self._about_order, send=self._cancelled),
        }

    async def run(self) -> None:
        """Deliver due messages until cancelled."""
        log.info("e-mail goes to %s", self.transport.description)
        outbox = self.booking.outbox
        try:
            await outbox.deliver_forever(self.handlers, self.settings.outbox_poll_s, what="e-mail")
        finally:
            self._stop_renderer()

    def _stop_renderer(self) -> None:
        """End the renderer process now, not when it has finished what it is building: the
        interpreter's exit waits for it, and a niced process on a busy machine can take many
        seconds (measured: 3.7 s idle, over 15 s under load) that SPEC §1's 10 s do not have. A
        confirmation cut short is still unsent, and is sent again after its lease."""
        renderer, self._renderer = self._renderer, None
        if renderer is None:
            return
        processes = list(renderer._processes.values())
        renderer.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()

    def _render(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._renderer is None:
            self._renderer = concurrent.futures.ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_renderer_started,
            )
        return self._renderer

    def _letter(self, message: OutboxMessage) -> messages.Letter:
        return messages.Letter(
            self.settings.mail_from, str(message.payload["email"]), message.dedupe_key
        )

    async def _sign_in(self, message: OutboxMessage) -> dict[str, Any]:
        payload = message.payload
        link = sign_in_link(self.settings, str(payload["link"]))
        minutes = max(1, self.settings.sign_in_ttl_s // 60)
        email = messages.sign_in(self._letter(message), link, str(payload["code"]), minutes)
        if self.transport.local:
            # The embedded default: whoever runs the node signs in from its log.
            log.info("sign-in for %s: %s (code %s)", payload["email"], link, payload["code"])
        await self.transport.send(email)
        # Sent: the link and the code need not stay on record.
        return {"email": payload["email"], "sent": "sign-in link and code (not kept)"}

    async def _about_order(self, message: OutboxMessage, send: _OrderLetter) -> Kept:
        """Send ``message`` about an order with the order, its event and its link as they are
        now; a message to an address the order no longer has (staff corrected it) is skipped
        instead: the order's current link and tickets must not go to the old address."""
        order_id = str(message.payload["order_id"])
        order = await self.booking.orders.get(order_id, None)
        if order.email != message.payload["email"]:
            return {**message.payload, SKIPPED: f"the order's address is now {order.email}"}
        event = await self.booking.inventory.event(order.event_id)
        link = order_link(self.settings, order_id, await self.booking.orders.link_key(order_id))
        await send(self._letter(message), order, event, link)
        return None

    async def _confirmation(
        self, letter: messages.Letter, order: Order, event: EventInfo, link: str
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            email = await loop.run_in_executor(
                self._render(), build_confirmation, letter, order, event, link
            )
        except concurrent.futures.BrokenExecutor:
            self._renderer = None  # the renderer died: a new one for the retry
            raise
        await self.transport.send(email)

    async def _cancelled(
        self, letter: messages.Letter, order: Order, event: EventInfo, link: str
    ) -> None:
        await self.transport.send(messages.order_cancelled(letter, order, event, link))
