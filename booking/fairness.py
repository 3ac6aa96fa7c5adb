"""Verifiable fairness of the pre-queue shuffle (issue 15).

Before the sale opens each waiting room holds a secret 32-byte *seed* and publishes its
*commitment*, ``SHA-256(seed)`` (hex). At opening, the pre-queue is placed by
:func:`seeded_order`, a deterministic function of the seed and the pre-queue's members; after
opening the seed is published with the pre-queue and a hash-chained log of the placement, so
anyone can recompute the order (:func:`verify`, ``concert-hub audit verify EVENT``).

* Queue ids are opaque: ``SHA-256(salt || user)`` (first 16 bytes, hex), with a per-event
  random salt that is never published; user names never are.
* :func:`seeded_order`: sort the queue ids ascending (the canonical order, so the order of
  arrival plays no part), then Fisher-Yates from the last index down: for ``i = n-1 … 1``,
  ``j = int(SHA-256(seed || i as 8 bytes big-endian)) mod (i + 1)``, swap ``i`` and ``j``. A
  256-bit number modulo at most a few million has no bias worth the name, so every order is
  equally likely for a uniformly random seed.
* The log: one entry per placed user, in position order:
  ``{"queue_id","position","time","prev","hash"}`` where ``prev`` is the previous entry's
  ``hash`` (the commitment for the first), and ``hash = SHA-256`` of the compact JSON of
  ``[queue_id, position, time, prev]``. ``time`` is the opening (unix seconds).
* The admissions: one entry per admission, in the order users were admitted, same fields and
  hash, continuing the same chain (the first's ``prev`` is the placement log's last ``hash``, or
  the commitment when nobody was in the pre-queue). ``position`` is the admission's place in
  line (1, 2, 3 …: the queue is served in order), ``time`` when it happened (unix seconds,
  three decimals). The first ``P`` admissions must be the ``P`` placed users in placement order;
  times never go back. ``head`` is the chain's last hash: one saved earlier must still be in
  the chain later (the log only grows).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from booking.errors import BookingError


class AuditBroken(BookingError):
    """The audit this node would publish does not verify (its stored log was edited, or entries
    are out of order): served as a 500 problem rather than as a document that lies."""

    kind = "audit_broken"


@dataclass(frozen=True, slots=True)
class Placement:
    """A room's record of its opening: what the audit is built from."""

    seed: bytes
    salt: bytes
    opened: bool
    opened_at: float | None
    #: The pre-queue's users in the order they were placed (position 1 first).
    placed: list[str]
    #: Every admission so far, in order: (user, unix time).
    admitted: list[tuple[str, float]] = field(default_factory=list)


def commitment(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def queue_id(salt: bytes, user: str) -> str:
    return hashlib.sha256(salt + user.encode()).hexdigest()[:32]


def seeded_order(ids: list[str], seed: bytes) -> list[str]:
    """The placement of ``ids`` under ``seed`` (module docstring)."""
    order = sorted(ids)
    for i in range(len(order) - 1, 0, -1):
        draw = hashlib.sha256(seed + i.to_bytes(8, "big")).digest()
        j = int.from_bytes(draw, "big") % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def place(users: list[str], seed: bytes, salt: bytes) -> list[str]:
    """``users`` in their seeded order (by their queue ids)."""
    by_id = {queue_id(salt, u): u for u in users}
    return [by_id[i] for i in seeded_order(list(by_id), seed)]


def entry_hash(queue: str, position: int, time: float, prev: str) -> str:
    raw = json.dumps([queue, position, time, prev], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def _chain(entries: list[tuple[str, int, float]], prev: str) -> list[dict[str, Any]]:
    out = []
    for queue, position, time in entries:
        digest = entry_hash(queue, position, time, prev)
        out.append({"queue_id": queue, "position": position, "time": time, "prev": prev,
                    "hash": digest})  # fmt: skip
        prev = digest
    return out


def audit(event_id: int, placement: Placement) -> dict[str, Any]:
    """The public audit document of an event's waiting room."""
    doc: dict[str, Any] = {"event_id": event_id, "commitment": commitment(placement.seed),
                           "seed": None, "opened_at": None, "prequeue": [], "log": [],
                           "admissions": [], "head": None}  # fmt: skip
    if not placement.opened:
        return doc
    time = placement.opened_at or 0.0
    salt = placement.salt
    ids = [queue_id(salt, u) for u in placement.placed]
    log = _chain([(q, n, time) for n, q in enumerate(ids, start=1)], doc["commitment"])
    prev = log[-1]["hash"] if log else doc["commitment"]
    admitted = [(queue_id(salt, user), n, round(at, 3))
                for n, (user, at) in enumerate(placement.admitted, start=1)]  # fmt: skip
    admissions = _chain(admitted, prev)
    head = admissions[-1]["hash"] if admissions else prev
    doc.update(seed=placement.seed.hex(), opened_at=time, prequeue=sorted(ids), log=log,
               admissions=admissions, head=head)  # fmt: skip
    return doc


def _check_chain(name: str, entries: list[dict[str, Any]], prev: Any, problems: list[str]) -> Any:
    """Check one stretch of the chain from ``prev``; returns its last hash."""
    for index, entry in enumerate(entries, start=1):
        if entry.get("position") != index:
            problems.append(f"{name} {index}: position {entry.get('position')} out of sequence")
        if entry.get("prev") != prev:
            problems.append(f"{name} {index}: the chain is broken (prev does not match)")
        digest = entry_hash(entry.get("queue_id", ""), entry.get("position", 0),
                            entry.get("time", 0), entry.get("prev", ""))  # fmt: skip
        if entry.get("hash") != digest:
            problems.append(f"{name} {index}: its hash does not match its contents")
        prev = entry.get("hash")
    return prev


def verify(doc: dict[str, Any]) -> list[str]:
    """What is wrong with an audit document (empty: it holds)."""
    if doc.get("seed") is None:
        return ["the sale has not opened: only the commitment is published yet"]
    problems = []
    try:
        seed = bytes.fromhex(doc["seed"])
    except (TypeError, ValueError):
        return ["the seed is not hex"]
    if commitment(seed) != doc.get("commitment"):
        problems.append("the seed does not match the commitment published before opening")
    prequeue = list(doc.get("prequeue") or [])
    if prequeue != sorted(set(prequeue)):
        problems.append("the pre-queue list is not in canonical (sorted, unique) order")
    log = list(doc.get("log") or [])
    expected = seeded_order(prequeue, seed)
    placed = [e.get("queue_id") for e in log]
    if placed != expected:
        first = next((i for i, (a, b) in enumerate(zip(placed, expected, strict=False))
                      if a != b), min(len(placed), len(expected)))  # fmt: skip
        problems.append(f"the placement differs from the seeded shuffle at position {first + 1}")
    prev = _check_chain("entry", log, doc.get("commitment"), problems)
    admissions = list(doc.get("admissions") or [])
    prev = _check_chain("admission", admissions, prev, problems)
    if doc.get("head", prev) != prev:
        problems.append("the head is not the chain's last hash")
    served = [e.get("queue_id") for e in admissions]
    placed_now = placed[: len(served)]
    if served[: len(placed)] != placed_now:
        first = next(i for i, (a, b) in enumerate(zip(served, placed_now, strict=False))
                     if a != b)  # fmt: skip
        problems.append(f"admission {first + 1} is not the pre-queue's next in placement order")
    if len(set(served)) != len(served):
        problems.append("a queue id is admitted twice")
    times = [e.get("time", 0) for e in admissions]
    if any(b < a for a, b in itertools.pairwise(times)):
        problems.append("admission times go back: entries are out of order")
    return problems


def extends(doc: dict[str, Any], head: str) -> bool:
    """Whether a head saved from an earlier audit of the same event is still in the chain
    (an admission log only grows: nothing before it was changed)."""
    hashes = {e.get("hash") for e in list(doc.get("log") or []) + list(doc.get("admissions") or [])}
    return head == doc.get("commitment") or head in hashes
