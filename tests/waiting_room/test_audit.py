"""Verifiable fairness: the seed is committed before opening, the pre-queue is placed by the
documented seeded shuffle, and the published audit passes ``concert-hub audit verify`` after a
sale; editing one entry, the seed, or swapping two entries makes it fail (both rooms)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from booking.fairness import audit, commitment, seeded_order, verify
from booking.waiting_room import Policy
from server.cli import main
from tests.waiting_room.conftest import RoomFactory

BEFORE = Policy(open=False, paused=False, rate_per_s=1000, max_active=10**6, admission_ttl_s=600)
OPEN = Policy(open=True, paused=False, rate_per_s=1000, max_active=10**6, admission_ttl_s=600)


async def sale(make_room: RoomFactory, event_id: int) -> tuple[dict[str, Any], str]:
    room = make_room(None)
    users = [f"fan{i:02d}" for i in range(30)]
    for user in users[:2]:
        await room.join(event_id, user, BEFORE)
    before = audit(event_id, await room.placement(event_id))
    assert before["seed"] is None and before["log"] == []  # only the commitment, before
    for user in users[2:]:
        await room.join(event_id, user, BEFORE)
    slow = dataclasses.replace(OPEN, rate_per_s=7)
    await room.admit(event_id, slow, 1_000_000.0)  # opening places the pre-queue; 7 admitted
    await room.admit(event_id, slow, 1_000_002.0)  # 7 more, two seconds later
    await room.join(event_id, "late", OPEN)
    doc = audit(event_id, await room.placement(event_id))
    # Every admission is in the chain, in the order of the placement, with its time.
    assert [e["position"] for e in doc["admissions"]] == list(range(1, 15))
    assert [e["queue_id"] for e in doc["admissions"]] == [e["queue_id"] for e in doc["log"][:14]]
    assert {e["time"] for e in doc["admissions"]} == {1_000_000.0, 1_000_002.0}
    assert doc["admissions"][0]["prev"] == doc["log"][-1]["hash"]
    assert doc["head"] == doc["admissions"][-1]["hash"]
    placed = await room.positions(event_id, users, OPEN)
    # The log's order is the order users were given.
    by_seq = [p.user for p in sorted(placed, key=lambda p: p.seq or 0)]
    assert len(doc["log"]) == len(users) and len(by_seq) == len(users)
    assert not any(user in json.dumps(doc) for user in users)  # opaque: no names
    return doc, before["commitment"]


async def test_an_honest_sale_verifies(make_room: RoomFactory, event_id: int,
                                       tmp_path: Path) -> None:  # fmt: skip
    doc, committed = await sale(make_room, event_id)
    assert doc["commitment"] == committed == commitment(bytes.fromhex(doc["seed"]))
    assert verify(doc) == []
    saved = tmp_path / "audit.json"
    saved.write_text(json.dumps(doc))
    assert main(["audit", "verify", str(event_id), "--file", str(saved)]) == 0
    head = doc["admissions"][5]["hash"]  # a head saved earlier is still in the log
    assert main(["audit", "verify", str(event_id), "--file", str(saved), "--head", head]) == 0
    assert main(["audit", "verify", str(event_id), "--file", str(saved), "--head", "0" * 64]) == 1


@pytest.mark.parametrize(
    "tamper", ["entry", "seed", "swap", "time", "admission", "admission-swap", "admission-time",
               "admission-dropped", "head"],
)  # fmt: skip
async def test_any_edit_fails(make_room: RoomFactory, event_id: int, tmp_path: Path,
                              tamper: str) -> None:  # fmt: skip
    doc, _ = await sale(make_room, event_id)
    bad = copy.deepcopy(doc)
    log = bad["log"]
    if tamper == "entry":
        log[3]["queue_id"] = log[4]["queue_id"]
    elif tamper == "seed":
        bad["seed"] = ("00" if bad["seed"][:2] != "00" else "11") + bad["seed"][2:]
    elif tamper == "swap":
        log[5], log[6] = log[6], log[5]
    elif tamper == "time":
        log[0]["time"] += 1
    elif tamper == "admission":
        bad["admissions"][3]["queue_id"] = log[20]["queue_id"]
    elif tamper == "admission-swap":
        admitted = bad["admissions"]
        admitted[6], admitted[7] = admitted[7], admitted[6]
    elif tamper == "admission-time":
        bad["admissions"][2]["time"] -= 5
    elif tamper == "admission-dropped":
        del bad["admissions"][4]
    else:
        bad["head"] = bad["admissions"][5]["hash"]
    assert verify(bad) != []
    saved = tmp_path / "audit.json"
    saved.write_text(json.dumps(bad))
    assert main(["audit", "verify", str(event_id), "--file", str(saved)]) == 1


def test_the_seeded_shuffle_is_deterministic_and_canonical() -> None:
    ids = [f"{i:032x}" for i in range(10)]
    seed = bytes(range(32))
    assert seeded_order(ids, seed) == seeded_order(list(reversed(ids)), seed)
    assert seeded_order(ids, seed) != seeded_order(ids, bytes(32))
    assert sorted(seeded_order(ids, seed)) == ids
