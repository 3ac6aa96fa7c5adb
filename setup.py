"""Build hooks of the distribution: the wheel carries the browser UI.

Everything else is declared in pyproject.toml. The UI is built from web/ by scripts/build-ui
(Node.js) and copied into the wheel as ``server/web_dist``, where :func:`server.web.default_dist`
finds it, so ``pip install concert-hub`` serves ``/`` and ``/admin`` without Node.js.

* From a checkout (web/package.json present), the sdist and the wheel first run scripts/build-ui
  (a no-op when web/dist is up to date).
* The sdist carries the built web/dist (see MANIFEST.in), so a wheel built from it, as
  ``python -m build`` does, needs no Node.js.
* An editable install (``pip install -e .``) carries nothing: the node serves the checkout's
  web/dist.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
WEB = ROOT / "web"
UI_DIST = WEB / "dist"
#: Where the UI goes inside the wheel (server/web.py looks there).
PACKAGED_UI = Path("server") / "web_dist"


def built_ui() -> Path:
    """web/dist, built first when the UI's sources are here."""
    if (WEB / "package.json").is_file():
        subprocess.run([str(ROOT / "scripts" / "build-ui")], check=True)
    if not all((UI_DIST / page).is_file() for page in ("index.html", "admin.html", "scan.html")):
        raise SystemExit("concert-hub: no built UI in web/dist; run scripts/build-ui (Node.js)")
    return UI_DIST


class BuildPyWithUI(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / PACKAGED_UI
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(built_ui(), target, ignore=shutil.ignore_patterns(".*"))


class SdistWithUI(sdist):
    def run(self) -> None:
        built_ui()
        super().run()


setup(cmdclass={"build_py": BuildPyWithUI, "sdist": SdistWithUI})
