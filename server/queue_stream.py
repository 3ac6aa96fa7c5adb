"""The waiting room, live (SPEC §6): admissions, personal positions, public stats.

* Admissions: every 100 ms each event whose waiting room is on is asked to admit whoever its
  policy allows; each admitted user gets a signed admission token on ``/user/queue/position``,
  published through the engine so it reaches their sessions on every node.
* Positions: each node pushes to its *own* subscribers of ``/user/queue/position`` (so periodic
  updates never cross nodes). Subscribers are spread over ten slots of the interval, so 10,000
  waiting users cost a steady trickle (1,000 every 200 ms, written in one batch), not a burst
  every two seconds; one batched lookup per event per slot serves all of a slot's users. The
  slots run one after another and each awaits its lookup (a Redis round trip in a cluster), so
  a slot's step must outlast that round trip on a loaded node: forty slots of 50 ms made a
  two-worker node's pushes up to 6 s late where ten were at most 3 s. A user hears on SUBSCRIBE,
  whenever their state changes, and at least every ``--position-interval-s`` while waiting.
* The sale: each tick also reads the sale's state from the seat map (selling, ``paused`` when
  every seat left is held, ``sold_out`` when none is); when it changes, every local waiting user
  hears their new state at once (not at their next slot). Users admitted for seats that came back
  (:meth:`booking.holds.SeatHolds.reap`) are told like any admitted user, with their offer.
* Which waiting rooms: every live one, whether or not this node was asked about its event yet
  (:meth:`QueueStream.discover`, every :data:`DISCOVER_S` and before a greeting): the room is the
  cluster's, and a node that a buyer's WebSocket reached while their requests went to another,
  or one just started, must tell its subscribers their place and take its turn admitting.
* Stats: once a second each node reads every live waiting room's figures, reports them to
  ``/metrics`` (waiting, active shoppers) and publishes
  ``{"serving","waiting","admitted_per_min","sale","rate","rate_reason"}`` to its own subscribers of
  ``/topic/events/{id}/queue`` (every node reads the same shared state, so nothing is sent twice
  across the cluster).

Measured here: admissions (one count per tick and event), and how late each slot's position
pushes went out past their deadline (one observation per slot, however many users it served).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib

from booking.admissions import Admissions
from booking.catalog import EventInfo
from booking.clock import utcnow
from booking.errors import Unavailable
from booking.waiting_room import QUEUED, Position, Stats
from protocol.events import Subscription
from server.bodies import dumps, position_json
from server.broker import Broker
from server.destinations import user_route
from server.engine import Message
from server.metrics import QueueMetrics
from server.session import StompSession
from server.task_set import TaskSet

log = logging.getLogger(__name__)

JSON = (("content-type", "application/json"),)
SLOTS = 10
ADMISSION_TICK_S = 0.1
#: How often a node looks for live waiting rooms it has not loaded, and how often at most.
DISCOVER_S = 5.0
DISCOVER_MIN_S = 1.0


def queue_route(event_id: int) -> str:
    return f"/topic/events/{event_id}/queue"


class QueueStream:
    def __init__(
        self,
        admissions: Admissions,
        broker: Broker,
        interval_s: float,
        metrics: QueueMetrics,
    ) -> None:
        self.admissions = admissions
        self.room = admissions.room
        self.broker = broker
        self.interval_s = interval_s
        self.metrics = metrics
        #: Users with a local /user/queue/position subscription, by slot: user → its route.
        self._watchers: list[dict[str, str]] = [{} for _ in range(SLOTS)]
        #: (event, user) → last state sent from this node.
        self._sent: dict[tuple[int, str], str] = {}
        self._tasks = TaskSet()
        #: event → the sale state its waiting users were last told of.
        self._sales: dict[int, str] = {}
        #: The latest look for live waiting rooms this node has not loaded (:meth:`discover`).
        self._discovery: asyncio.Future[None] | None = None
        self._discovered_at = 0.0

    # -- bodies --------------------------------------------------------------------------------

    def body(self, position: Position) -> bytes:
        return position_json(self.admissions.stamp(position))

    # -- subscriptions -------------------------------------------------------------------------

    def on_subscribe(self, session: StompSession, subscription: Subscription, _: str) -> None:
        user = session.principal.name
        if user is None or subscription.destination != "/user/queue/position":
            return
        self._watchers[zlib.crc32(user.encode()) % SLOTS][user] = user_route(user, "position")
        self._tasks.start(self._greet(session, subscription, user))

    async def discover(self) -> None:
        """Load the live waiting rooms this node has not loaded yet (every :data:`DISCOVER_S`,
        and before greeting a subscriber): the waiting room is the cluster's, and without them
        this node would neither admit from their queues (a node just started) nor tell its own
        subscribers where they stand (a buyer whose requests went to another node). One read
        at most every :data:`DISCOVER_MIN_S`, shared by whoever asks meanwhile."""
        now = time.monotonic()
        if self._discovery is None or (
            self._discovery.done() and now - self._discovered_at >= DISCOVER_MIN_S
        ):
            self._discovered_at = now
            self._discovery = asyncio.ensure_future(
                self.admissions.inventory.load_live_waiting_rooms()
            )
        await asyncio.shield(self._discovery)

    async def _greet(self, session: StompSession, subscription: Subscription, user: str) -> None:
        """Tell a new subscriber where they stand in every waiting room they joined."""
        try:
            await self.discover()
        except Exception:
            log.exception("could not look for live waiting rooms")  # the loaded ones still
        for info in self.admissions.events():
            try:
                found = await self.room.position(info.id, user, self.admissions.policy(info))
            except Unavailable:
                return  # the position loop tells them once the room is back
            if found is not None and not session.closed:
                self.broker.send_to(session, subscription, JSON, self.body(found))

    # -- loops ---------------------------------------------------------------------------------

    async def run_admissions(self) -> None:
        while True:
            await asyncio.sleep(ADMISSION_TICK_S)
            for info in self.admissions.events():
                policy = self.admissions.policy(info)
                if self._sales.get(info.id, policy.sale) != policy.sale:
                    self._tasks.start(self._push_event(info))  # everyone in line hears it now
                self._sales[info.id] = policy.sale
                try:
                    admitted = await self.room.admit(info.id, policy, time.time())
                    admitted += self.admissions.take_offered(info.id)
                    if not admitted:
                        continue
                    found = await self.room.positions(info.id, admitted, policy)
                except Unavailable:
                    continue  # the room logs the outage, once
                except Exception:
                    log.exception("admission tick for event %d failed", info.id)
                    continue
                self.metrics.admissions.labels(str(info.id)).inc(len(admitted))
                for position in found:
                    route = user_route(position.user, "position")
                    self.broker.publish(route, JSON, self.body(position))
                    # Recorded as sent only if this node has a subscriber to hear it now; else
                    # (a page still connecting) the position loop delivers the new state on its
                    # next pass, so no one misses their admission.
                    if self.broker.subscriber_count(route):
                        self._sent[(info.id, position.user)] = position.state

    async def run_positions(self) -> None:
        slot = 0
        step = self.interval_s / SLOTS
        loop = asyncio.get_running_loop()
        due = loop.time()
        lateness = self.metrics.position_lateness
        while True:
            # Absolute deadlines: sleeping a fixed step after each slot's work would stretch the
            # cycle by all the slots' work (at 10,000 users, 2 s became 2.5 to 3 s).
            due += step
            deadline = due  # when this slot's users are owed their push
            now = loop.time()
            due = max(due, now)  # fell behind (a stall): carry on from now rather than burst
            await asyncio.sleep(due - now)
            if await self._push(slot):
                lateness.observe(max(0.0, loop.time() - deadline))
            slot = (slot + 1) % SLOTS

    async def _push_event(self, info: EventInfo) -> None:
        """Push their standing in ``info``'s waiting room to every local subscriber, now."""
        for slot in range(SLOTS):
            await self._push(slot, info)

    async def _push(self, slot: int, only: EventInfo | None = None) -> int:
        """Push their positions to the slot's users who still subscribe here (in every
        waiting room, or ``only`` that one); returns how many were pushed."""
        watchers = self._watchers[slot]
        count = self.broker.subscriber_count
        gone = [user for user, route in watchers.items() if not count(route)]
        for user in gone:
            del watchers[user]
        if not watchers:
            return 0
        live = list(watchers)
        pushed = 0
        for info in self.admissions.events() if only is None else [only]:
            policy = self.admissions.policy(info)
            try:
                found = await self.room.positions(info.id, live, policy)
            except Unavailable:
                continue
            except Exception:
                log.exception("position lookup for event %d failed", info.id)
                continue
            sent = self._sent
            due = [p for p in found if p.state in QUEUED or p.state != sent.get((info.id, p.user))]
            body = self.body
            self.broker.fan_out_each([(watchers[p.user], body(p)) for p in due], JSON)
            for position in due:
                sent[(info.id, position.user)] = position.state
            pushed += len(due)
        return pushed

    async def run_stats(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            figures: dict[int, Stats] = {}
            now = utcnow()
            for info in self.admissions.events():
                if not info.live(now):
                    continue
                try:
                    stats = figures[info.id] = await self.room.stats(info.id)
                except Unavailable:
                    continue
                except Exception:
                    log.exception("queue stats of event %d failed", info.id)
                    continue
                route = queue_route(info.id)
                if not self.broker.subscriber_count(route):
                    continue
                rate = self.admissions.outflow.describe(info)
                body = dumps({
                    "serving": stats.serving, "waiting": stats.waiting,
                    "admitted_per_min": stats.admitted_per_min,
                    "sale": self.admissions.sale(info)[0],
                    "rate": round(rate.per_s, 2), "rate_reason": rate.reason,
                })  # fmt: skip
                self.broker.fan_out(Message(route, self.broker.next_id(), JSON, body))
            self.metrics.report(figures)
