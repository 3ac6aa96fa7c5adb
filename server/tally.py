"""Open things counted by key (sessions by client address or by user, HTTP connections by
address), for the caps on them: a key whose count falls to zero is dropped, so the map holds the
keys of what is open now, never every client ever seen."""

from __future__ import annotations


class Tally:
    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def __getitem__(self, key: str) -> int:
        return self._counts.get(key, 0)

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, key: str) -> None:
        self._counts[key] = self._counts.get(key, 0) + 1

    def remove(self, key: str) -> None:
        left = self._counts.get(key, 0) - 1
        if left > 0:
            self._counts[key] = left
        else:
            self._counts.pop(key, None)
