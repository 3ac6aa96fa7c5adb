"""The SDK's documented examples run as written against a demo node (``--demo``, as
scripts/serve starts it: event 1 behind a waiting room): the README's "Python SDK" example and
the module docstring of ``concert_hub_client.sdk``, with only the URL and the tokens filled in."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import concert_hub_client.sdk
from tests.conftest import ServerProcess
from tests.server.stomp_clients import unique

README = Path(__file__).resolve().parents[2] / "README.md"
URL = "ws://127.0.0.1:8080/ws"


def readme_example() -> str:
    section = README.read_text().split("\n## Python SDK\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def docstring_example() -> str:
    doc = concert_hub_client.sdk.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    return "from concert_hub_client.sdk import connect\n" + textwrap.dedent(block)


async def run(code: str, node: ServerProcess, **tokens: str) -> dict[str, Any]:
    """``code`` (top-level ``await``s) as the body of a coroutine; its local names."""
    assert URL in code
    body = textwrap.indent(code.replace(URL, node.ws_url), "    ")
    namespace: dict[str, Any] = dict(tokens)
    source = f"async def example():\n{body}\n    return locals()\n"
    exec(compile(source, "<example>", "exec"), namespace)
    result: dict[str, Any] = await namespace["example"]()
    return result


@pytest.fixture
def demo(make_server: Callable[..., ServerProcess]) -> ServerProcess:
    return make_server(demo=True)


async def test_the_readme_example_runs_against_the_demo_node(
    demo: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER_TOKEN", demo.token(unique("alice")))
    monkeypatch.setenv("PUBLISHER_TOKEN", demo.token(unique("news"), "publisher"))
    done = await run(readme_example(), demo)
    assert done["position"].state == "admitted"
    assert done["hold"].seats == ["STALLS-A-1"] and done["hold"].event_id == 1
    assert done["message"].body == b"hello"


async def test_the_module_docstring_example_runs_against_the_demo_node(
    demo: ServerProcess,
) -> None:
    done = await run(docstring_example(), demo, token=demo.token(unique("news"), "publisher"))
    assert done["message"].body == b"hello"
    assert done["seats"].state.ready
