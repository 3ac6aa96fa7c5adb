"""The CI pipeline for forks (issue 9): .github/workflows/ci.yml.

GitHub is not reachable from here, so the workflow is validated against the GitHub workflow
JSON schema that check-jsonschema vendors, then checked for what it must do: run the README's
test command with MariaDB and Redis service containers on the ports the tests use, on the
Python and Node versions the project asks for, and build the image. Each check is shown to
reject a broken copy.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from jsonschema.validators import validator_for
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


@functools.cache
def workflow_validator() -> Any:
    vendored = files("check_jsonschema.builtin_schemas.vendor").joinpath("github-workflows.json")
    schema = json.loads(vendored.read_text(encoding="utf-8"))
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(doc: Any) -> list[str]:
    errors = workflow_validator().iter_errors(doc)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors)


def readme_test_command() -> str:
    """The test command of the README's "Two commands" block."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Two commands\n.*?```sh\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block[1].splitlines()]
    (command,) = [c for c in commands if c.startswith("scripts/test")]
    return command


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def _service_problems(services: dict[str, Any]) -> list[str]:
    problems = []
    wanted = {"mariadb": ("mariadb:", "3306:3306"), "redis": ("redis:", "6379:6379")}
    for name, (image, port) in wanted.items():
        service = services.get(name)
        if service is None:
            problems.append(f"no {name} service container")
            continue
        if not str(service.get("image", "")).startswith(image):
            problems.append(f"{name}: image {service.get('image')!r}")
        if port not in [str(p) for p in service.get("ports", [])]:
            problems.append(f"{name}: not published on {port} (the tests use 127.0.0.1)")
        if "--health-cmd" not in str(service.get("options", "")):
            problems.append(f"{name}: no health check, so the tests may start before it")
    mariadb = services.get("mariadb", {}).get("env", {})
    if str(mariadb.get("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD")) != "1":
        problems.append("mariadb: the tests log in as root without a password")
    return problems


def workflow_problems(doc: Any) -> list[str]:
    problems = schema_errors(doc)
    if problems:
        return problems
    jobs = doc["jobs"]
    command = readme_test_command()
    testing = [
        (name, job)
        for name, job in jobs.items()
        if any(step.get("run", "").strip() == command for step in job.get("steps", []))
    ]
    if len(testing) != 1:
        return [*problems, f"no job runs the README's test command `{command}`"]
    _, job = testing[0]
    problems += _service_problems(job.get("services", {}))
    steps = job["steps"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    minimum_python = version_tuple(pyproject["project"]["requires-python"])
    engines = json.loads((ROOT / "web" / "package.json").read_text(encoding="utf-8"))["engines"]
    for action, key, minimum in (
        ("actions/setup-python", "python-version", minimum_python),
        ("actions/setup-node", "node-version", version_tuple(engines["node"])),
    ):
        versions = [
            str(s.get("with", {}).get(key, ""))
            for s in steps
            if str(s.get("uses", "")).startswith(action + "@")
        ]
        if len(versions) != 1 or version_tuple(versions[0]) < minimum[: len(versions[0])]:
            problems.append(f"{action}: {versions}, not one version >= {minimum}")
    if not str(steps[0].get("uses", "")).startswith("actions/checkout@"):
        problems.append("the test job does not check out the repository first")
    builds_image = any(
        str(s.get("uses", "")).startswith("docker/build-push-action@")
        and s.get("with", {}).get("file", "Dockerfile") == "Dockerfile"
        and s.get("with", {}).get("push") is False
        for j in jobs.values()
        for s in j.get("steps", [])
    )
    if not builds_image:
        problems.append("no job builds the image from the Dockerfile (without pushing it)")
    for name, j in jobs.items():
        for step in j.get("steps", []):
            uses = str(step.get("uses", ""))
            if uses and not re.search(r"@(v\d+(\.\d+)*|[0-9a-f]{40})$", uses):
                problems.append(f"{name}: {uses} is not pinned to a version")
    if doc.get("permissions") != {"contents": "read"}:
        problems.append("the workflow's token is not read-only")
    return problems


@pytest.fixture(scope="module")
def workflow_text() -> str:
    return WORKFLOW.read_text(encoding="utf-8")


def test_the_workflow_runs_the_readme_test_command_and_builds_the_image(
    workflow_text: str,
) -> None:
    assert readme_test_command() == "scripts/test"
    assert workflow_problems(load(workflow_text)) == []


def test_the_vendored_schema_is_github_s_workflow_schema() -> None:
    schema = workflow_validator().schema
    assert "jobs" in schema["required"]
    assert "github" in json.dumps(schema.get("$id", "") + schema.get("$comment", "")).lower()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("runs-on: ubuntu-24.04\n    timeout-minutes: 60", "timeout-minutes: 60", "jobs/test"),
        ("  pull_request:\n", "  pull_requests:\n", "on"),
        (
            "      - name: scripts/test\n        run: scripts/test",
            "      - run: scripts/tset",
            "README",
        ),
        ("          - 3306:3306", "          - 3307:3306", "3306:3306"),
        (
            '          MARIADB_ALLOW_EMPTY_ROOT_PASSWORD: "1"',
            "          MARIADB_ROOT_PASSWORD: x",
            "root",
        ),
        (
            "      redis:\n        image: redis:7-alpine",
            "      cache:\n        image: redis:7-alpine",
            "no redis",
        ),
        ('python-version: "3.11"', 'python-version: "3.10"', "setup-python"),
        ('node-version: "22"', 'node-version: "18"', "setup-node"),
        (
            "- uses: actions/checkout@v4\n      - uses: actions/setup-python",
            "- uses: actions/checkout\n      - uses: actions/setup-python",
            "not pinned",
        ),
        ("          push: false", "          push: true", "builds the image"),
        ("permissions:\n  contents: read", "permissions: write-all", "read-only"),
        ('          --health-cmd "redis-cli ping"\n', "", "health check"),
    ],
)
def test_workflow_checks_reject_a_broken_copy(
    workflow_text: str, old: str, new: str, expected: str
) -> None:
    assert old in workflow_text
    problems = workflow_problems(load(workflow_text.replace(old, new, 1)))
    assert any(expected in p for p in problems), problems
