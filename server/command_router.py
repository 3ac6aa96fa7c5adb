"""Where a SEND to ``/app/...`` goes: destination templates with ``{parameters}`` → commands.

``/app/ping`` is an exact destination; ``/app/events/{event_id}/holds`` matches
``/app/events/42/holds`` and hands the command ``{"event_id": "42"}``. A parameter matches one
path segment unless its template gives a pattern (``event_id=r"[0-9]{1,9}"``). A destination no
template matches has no command (the session answers ERROR ``forbidden destination``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

#: The session type commands are called with (the router does not need to know it).
S = TypeVar("S")

#: A command: (session, path parameters, request headers, body); it must not block. What it
#: returns is its work under way: the SEND's RECEIPT waits for it (SPEC §3: "after the frame
#: took effect").
AppCommand = Callable[[S, dict[str, str], list[tuple[str, str]], bytes], Awaitable[None] | None]

_PARAM = re.compile(r"\{(\w+)\}")


class CommandRouter(Generic[S]):
    def __init__(self) -> None:
        self._exact: dict[str, AppCommand[S]] = {}
        self._templates: list[tuple[re.Pattern[str], AppCommand[S]]] = []

    def add(self, template: str, command: AppCommand[S], **patterns: str) -> None:
        if not _PARAM.search(template):
            self._exact[template] = command
            return
        parts: list[str] = []
        last = 0
        for match in _PARAM.finditer(template):
            name = match[1]
            parts.append(re.escape(template[last : match.start()]))
            parts.append(f"(?P<{name}>{patterns.get(name, '[^/]+')})")
            last = match.end()
        parts.append(re.escape(template[last:]))
        self._templates.append((re.compile("".join(parts)), command))

    def resolve(self, destination: str) -> tuple[AppCommand[S], dict[str, str]] | None:
        command = self._exact.get(destination)
        if command is not None:
            return command, {}
        for pattern, command in self._templates:
            match = pattern.fullmatch(destination)
            if match:
                return command, match.groupdict()
        return None
