"""A cost for extra places: joining a waiting room with a proof of work (issue 15), through a
real node: refused without a valid proof (problem+json), not reusable across users or events,
a new difficulty applies to new challenges only, and the Python client's solver joins over REST
and over STOMP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from booking.proof import work
from concert_hub_client.proof import solve
from concert_hub_client.sdk import connect
from concert_hub_client.state import CommandError
from tests.conftest import ServerProcess, free_port, rest


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(free_port(), free_port(), tmp_path_factory.mktemp("pow"))
    proc.start()
    yield proc
    proc.stop()


def iso_in(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def admin(node: ServerProcess, method: str, path: str, body: object) -> Any:
    status, found = rest(node, method, path, body, token=node.token("admin", "admin"))
    assert status in {200, 201}, found
    return found


def event(node: ServerProcess, difficulty: int) -> int:
    return int(admin(node, "POST", "/api/admin/events", {
        "name": "Costly", "venue": "Hall", "starts_at": iso_in(86400),
        "sale_opens_at": iso_in(-60), "sale_closes_at": iso_in(3600), "status": "on_sale",
        "waiting_room": True, "admission_rate": 0.01, "max_active_shoppers": 1,
        "pow_difficulty": difficulty,
        "layout": {"tiers": [{"name": "A", "price_cents": 5000}],
                   "sections": [{"name": "S", "rows": 1, "seats_per_row": 5, "tier": "A"}]},
    })["id"])  # fmt: skip


def challenge(node: ServerProcess, event_id: int, user: str) -> dict[str, Any]:
    status, found = rest(node, "POST", f"/api/events/{event_id}/queue/challenge",
                         token=node.token(user))  # fmt: skip
    assert status == 200, found
    answer: dict[str, Any] = found
    return answer


def join(node: ServerProcess, event_id: int, user: str, proof: str | None) -> tuple[int, Any]:
    headers = {} if proof is None else {"X-Queue-Proof": proof}
    return rest(node, "POST", f"/api/events/{event_id}/queue", token=node.token(user),
                headers=headers)  # fmt: skip


def test_a_join_needs_a_valid_proof_bound_to_its_user_and_event(node: ServerProcess) -> None:
    first, second = event(node, 12), event(node, 12)
    status, problem = join(node, first, "alice", None)
    assert (status, problem["kind"]) == (403, "proof_required"), problem
    issued = challenge(node, first, "alice")
    assert issued["difficulty"] == 12 and issued["expires_at"].endswith("Z")
    proof = solve(issued["challenge"], issued["difficulty"])
    # A wrong nonce, a forged challenge: refused.
    for wrong in (issued["challenge"] + ":not-a-solution", "forged.sig:1"):
        status, problem = join(node, first, "alice", wrong)
        assert (status, problem["kind"]) == (403, "proof_required"), problem
    # Alice's proof is no good for Bob, nor for another event.
    assert join(node, first, "bob", proof)[1]["kind"] == "proof_required"
    assert join(node, second, "alice", proof)[1]["kind"] == "proof_required"
    status, joined = join(node, first, "alice", proof)
    assert (status, joined["state"] in {"waiting", "admitted"}) == (200, True), joined


def test_a_new_difficulty_applies_to_new_challenges_only(node: ServerProcess) -> None:
    event_id = event(node, 4)
    old = challenge(node, event_id, "carol")
    admin(node, "PATCH", f"/api/admin/events/{event_id}", {"pow_difficulty": 16})
    new = challenge(node, event_id, "dave")
    assert (old["difficulty"], new["difficulty"]) == (4, 16)
    # Carol's challenge was issued at 4 bits: a 4-bit solution still joins.
    assert join(node, event_id, "carol", solve(old["challenge"], 4))[0] == 200
    # Dave's needs 16 bits: a solution meeting only 4 is refused (when it falls short of 16).
    weak = solve(new["challenge"], 4)
    nonce = weak.rsplit(":", 1)[1]
    if work(new["challenge"], nonce) < 16:
        assert join(node, event_id, "dave", weak)[1]["kind"] == "proof_required"
    assert join(node, event_id, "dave", solve(new["challenge"], 16))[0] == 200


async def test_the_python_client_solves_and_joins_over_stomp(node: ServerProcess) -> None:
    event_id = event(node, 10)
    issued = challenge(node, event_id, "erin")
    proof = solve(issued["challenge"], issued["difficulty"])
    async with connect(node.ws_url, token=node.token("erin")) as client:
        with pytest.raises(CommandError) as refused:
            await client.join_queue(event_id)
        assert refused.value.kind == "proof_required", refused.value.reply
        joined = await client.join_queue(event_id, proof=proof)
        assert joined.event_id == event_id
        assert joined.state in {"waiting", "admitted"}, joined
