"""The waiting room over REST: join an event's queue, see where you stand (SPEC §5, §6)."""

from __future__ import annotations

from aiohttp import web

from booking.clock import from_unix, iso
from server.api.auth import Access, user_name
from server.api.operations import Header, Operation, event_id
from server.api.payloads import json_response
from server.auth import Principal
from server.bodies import ChallengeOut, QueuePositionOut, position_out
from server.keys import BOOKING

PROOF_HEADER = "X-Queue-Proof"


async def join(request: web.Request, principal: Principal) -> web.Response:
    admissions = request.app[BOOKING].admissions
    proof = request.headers.get(PROOF_HEADER)
    position = await admissions.join(event_id(request), user_name(principal), proof)
    return json_response(position_out(position))


async def audit(request: web.Request, _: Principal) -> web.Response:
    return json_response(await request.app[BOOKING].admissions.audit(event_id(request)))


async def challenge(request: web.Request, principal: Principal) -> web.Response:
    admissions = request.app[BOOKING].admissions
    found, difficulty, expires = await admissions.challenge(event_id(request), user_name(principal))
    out = ChallengeOut(challenge=found, difficulty=difficulty, expires_at=iso(from_unix(expires)))
    return json_response(out)


async def me(request: web.Request, principal: Principal) -> web.Response:
    admissions = request.app[BOOKING].admissions
    position = await admissions.standing(event_id(request), user_name(principal))
    return json_response(position_out(position))


OPERATIONS: list[Operation] = [
    Operation("POST", "/api/events/{event_id}/queue", join, "Join the waiting room", "queue",
              access=Access.USER, response=QueuePositionOut, errors=(403, 404, 409, 422, 503),
              headers=(Header(PROOF_HEADER, "`challenge:nonce`, when the event asks for a "
                              "proof of work (`pow_difficulty` > 0)"),),
              description="Idempotent: joining again keeps your place. Before the sale opens you "
              "wait in the pre-queue (no position yet), shuffled uniformly at opening; later "
              "arrivals are first come, first served. Live updates: SUBSCRIBE "
              "/user/queue/position. 422 when the event has no waiting room; 409 outside "
              "the sale; 403 `proof_required` without a valid proof of work when the event "
              "asks for one."),
    Operation("GET", "/api/events/{event_id}/queue/audit", audit,
              "Check the pre-queue shuffle and the admission log", "queue", errors=(404, 422, 500),
              description="Before opening: `commitment` (SHA-256 of the shuffle's seed). After: "
              "also `seed`, `opened_at`, `prequeue` (opaque queue ids, sorted), `log`, the "
              "hash-chained placement (`queue_id`, `position`, `time`, `prev`, `hash`), "
              "`admissions`, every admission in order on the same chain, and `head`, its last "
              "hash. The node verifies it before serving it: 500 `audit_broken` when it does "
              "not. `concert-hub audit verify EVENT` recomputes and checks it (README: "
              "fairness)."),
    Operation("POST", "/api/events/{event_id}/queue/challenge", challenge,
              "A proof-of-work challenge for joining", "queue", access=Access.USER,
              response=ChallengeOut, errors=(404, 422),
              description="Find a nonce such that SHA-256(`challenge:nonce`) has `difficulty` "
              "leading zero bits, then join with `X-Queue-Proof: challenge:nonce`. Good for "
              "you and this event only, until `expires_at`; `difficulty` 0: no proof needed."),
    Operation("GET", "/api/events/{event_id}/queue/me", me, "Where you stand", "queue",
              access=Access.USER, response=QueuePositionOut, errors=(404, 503),
              description="When admitted, carries the admission token (re-issued with the "
              "admission's own expiry, e.g. after a reconnect); state not_joined if you never "
              "joined; 404 only for an unknown event."),
]  # fmt: skip
