"""The distribution (issue 9): ``python -m build`` makes a wheel that carries the browser UI, so
``pip install concert-hub`` then ``concert-hub serve`` serves ``/`` and ``/admin`` without Node.

The sdist and the wheel are built as a user would (``python -m build``: the sdist from the
checkout, the wheel from the sdist), offline (no build isolation: the test tools already hold
setuptools). The wheel is installed into a new virtualenv outside the checkout. Its
dependencies come from the test environment through a path entry (no index is asked), but the
project itself only from the wheel: the test checks that the node's ``server`` package is the
new environment's, and runs it from a directory that is not the checkout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
PURELIB = "import sysconfig; print(sysconfig.get_path('purelib'))"


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (sdist,) = out.glob("concert_hub-*.tar.gz")
    (wheel,) = out.glob("concert_hub-*-py3-none-any.whl")
    return sdist, wheel


def test_the_sdist_and_the_wheel_carry_the_built_ui(distributions: tuple[Path, Path]) -> None:
    sdist, wheel = distributions
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"web/dist/index.html", "web/dist/admin.html", "setup.py"} <= names
    assert not any(n.startswith("web/src") for n in names)  # built pages only
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"server/web_dist/index.html", "server/web_dist/admin.html"} <= names
    assets = {n for n in names if n.startswith("server/web_dist/assets/")}
    assert any(n.endswith(".js") for n in assets)
    assert not any("/." in n for n in names)  # no build stamps
    assert "booking/migrations/env.py" in names
    # PEP 561 markers: a user's mypy reads the SDK's hints (and the protocol's it imports).
    assert {"concert_hub_client/py.typed", "protocol/py.typed"} <= names


@pytest.fixture(scope="module")
def installed(
    distributions: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A new virtualenv (outside the checkout) with the wheel installed; its bin directory."""
    venv = tmp_path_factory.mktemp("venv")
    assert not venv.resolve().is_relative_to(ROOT)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", PURELIB],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    # The dependencies: the test environment's site-packages, as a plain path entry (its own
    # .pth files, such as the checkout's editable install, are not processed from there).
    (site / "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _, wheel = distributions
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--no-deps", "--no-index", "--quiet", str(wheel)],
        check=True, timeout=120,
    )  # fmt: skip
    yield venv / "bin"


def test_the_installed_package_is_the_wheel_not_the_checkout(
    installed: Path, tmp_path: Path
) -> None:
    where = subprocess.run(
        [str(installed / "python"), "-c",
         "import server, server.web as w; print(server.__file__); print(w.default_dist())"],
        capture_output=True, text=True, check=True, cwd=tmp_path, env=_clean_env(),
    ).stdout.split()  # fmt: skip
    venv = installed.parent.resolve()
    assert Path(where[0]).resolve().is_relative_to(venv)
    assert Path(where[1]).resolve().is_relative_to(venv)
    assert Path(where[1]).name == "web_dist"


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONCERT_HUB_")}
    env.pop("PYTHONPATH", None)
    return env


def test_the_installed_node_serves_the_ui_without_node(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    env = _clean_env()
    env["PATH"] = f"{installed}:/usr/bin:/bin"  # no Node.js needed, so none offered
    log = (tmp_path / "node.log").open("wb")
    node = subprocess.Popen(
        [str(installed / "concert-hub"), "serve", "--port", str(port), "--stomp-port", "0",
         "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert node.poll() is None, (tmp_path / "node.log").read_text()
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "node.log").read_text()
                time.sleep(0.1)
        pages = {}
        for path in ("/", "/admin"):
            with urllib.request.urlopen(base + path, timeout=10) as response:
                assert response.status == 200, path
                assert response.headers["Content-Type"].startswith("text/html")
                pages[path] = response.read().decode()
        assert pages["/"] != pages["/admin"]
        script = pages["/"].split('src="', 1)[1].split('"', 1)[0]
        assert script.startswith("/assets/")
        with urllib.request.urlopen(base + script, timeout=10) as response:
            assert response.status == 200
            assert "javascript" in response.headers["Content-Type"]
    finally:
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=15) == 0
        log.close()


USER_SCRIPT = """
from concert_hub_client.sdk import connect
from concert_hub_client.state import Hold
from protocol.client import Message


async def main(token: str) -> Hold:
    async with connect("ws://127.0.0.1:8080/ws", token=token) as client:
        async with await client.subscribe("/topic/news") as news:
            message: Message = await anext(news)
            print(message.body)
        return await client.hold(1, seats=["STALLS-A-1"])
"""


def test_a_users_strict_mypy_reads_the_installed_sdks_types(
    installed: Path, tmp_path: Path
) -> None:
    """PEP 561: without ``py.typed`` in the wheel, mypy --strict refuses the import
    (``import-untyped``)."""
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-executable",
         str(installed / "python"), str(script)],
        capture_output=True, text=True, check=False, cwd=tmp_path, env=_clean_env(), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
