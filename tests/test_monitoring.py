"""Monitoring (SPEC §10, issue 9): the metric catalogue, deploy/prometheus and deploy/grafana.

Every check runs offline and is shown to reject a broken copy of its file:

* The catalogue: a freshly started node exports every family of ``server/metrics.py`` at
  ``/metrics``; after a short scripted sale (:mod:`tests.scripted_sale`, on SQLite and MariaDB)
  every family moved as the sale should have moved it (a conflict counts as ``conflict``, not
  ``granted``; a decline as ``declined``…); the "Metrics" table of docs/operations.md lists
  exactly the families exported. The families a sale does not move are checked where their
  event is made: slow-consumer closes and refused connections in tests/server/test_limits.py,
  Redis connected and reconnects in tests/cluster/test_redis_outage.py.
* deploy/prometheus: ``promtool check config``, ``promtool check rules`` and ``promtool test
  rules`` (Debian's promtool, installed by ``scripts/setup --test``); every alert the issue asks
  for exists, has a unit test, a severity, and a ``runbook`` annotation naming a section of
  docs/operations.md that exists.
* deploy/grafana: both dashboards are dashboard JSON models Grafana loads (schema version set,
  unique panel ids, panels on the 24-column grid without overlap, every query through the
  ``datasource`` variable, whose default is the provisioned data source's uid).
* Every PromQL expression of every panel, variable and rule parses (promql-parser, a port of
  Prometheus' own parser) and names only metrics the node exported after the scripted sale
  (plus ``up``, which Prometheus adds, and, in rules, series recorded by the rules themselves).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from ruamel.yaml import YAML

from tests.conftest import BACKENDS, ServerProcess, free_port, migrated_database_url_for
from tests.scripted_sale import POSITION_INTERVAL_S, SEAT_CHANGES, Sale, Scrape, run_sale

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
OPERATIONS = ROOT / "docs" / "operations.md"

#: Series Prometheus makes itself for every target; not exported by a node.
PROMETHEUS_SERIES = {"up"}
#: The alerts issue 9 asks for, by what they are about.
REQUIRED_ALERTS = {
    "ConcertHubNodeNotReady",  # node not ready
    "ConcertHubRedisDisconnected",  # Redis disconnected
    "ConcertHubHoldLatencyOverBudget",  # hold p99 over budget
    "ConcertHubEventLoopLag",  # loop lag
    "ConcertHubDatabasePoolSaturated",  # DB pool saturated
    "ConcertHubPaymentErrors",  # payment error ratio
    "ConcertHubSlowConsumerStorm",  # slow-consumer storm
    "ConcertHubPositionPushesLate",  # position pushes late
}
#: What each dashboard must show (issue 9), as metrics its panels must query.
DASHBOARD_COVERAGE = {
    "concert-hub-on-sale": {
        "concert_hub_queue_waiting",
        "concert_hub_queue_admissions_total",
        "concert_hub_holds_total",
        "concert_hub_checkouts_total",
        "concert_hub_payment_duration_seconds_bucket",
        "concert_hub_seats",
        "concert_hub_seatmap_delta_lag_seconds_bucket",
    },
    "concert-hub-nodes": {
        "concert_hub_connections",
        "concert_hub_deliveries_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "concert_hub_event_loop_lag_seconds_bucket",
        "concert_hub_db_pool_in_use",
        "concert_hub_redis_connected",
    },
}


def load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


# --------------------------------------------------------------------------------------------
# The catalogue: what a fresh node exports


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrape]:
    """The first scrape of a node that has done nothing yet."""
    node = ServerProcess(free_port(), free_port(), tmp_path_factory.mktemp("fresh-node"))
    node.start()
    try:
        yield Scrape.of(node)
    finally:
        node.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def sale(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sale]:
    """A node (on each backend) after the scripted sale, with its scrapes."""
    workdir = tmp_path_factory.mktemp(f"sale-{request.param}")
    for url in migrated_database_url_for(request.param, workdir):
        node = ServerProcess(
            free_port(), free_port(), workdir,
            {"database_url": url, "position_interval_s": POSITION_INTERVAL_S},
        )  # fmt: skip
        node.start()
        try:
            yield run_sale(node, url)
        finally:
            node.stop()


@pytest.fixture(scope="module")
def exported(sale: Sale) -> set[str]:
    """Every series name the node offered after the scripted sale."""
    assert sale.final is not None
    return sale.final.series


def test_a_fresh_node_exports_every_family_of_the_catalogue(
    fresh: Scrape, exported: set[str]
) -> None:
    expected = {
        # broker (unchanged names)
        "concert_hub_connections", "concert_hub_sessions", "concert_hub_subscriptions",
        "concert_hub_frames_in_total", "concert_hub_frames_out_total",
        "concert_hub_deliveries_total", "concert_hub_errors_total",
        "concert_hub_rejected_connections_total",
        # HTTP
        "concert_hub_http_request_duration_seconds_bucket", "concert_hub_http_requests_in_flight",
        # booking
        "concert_hub_holds_total", "concert_hub_hold_decision_seconds_bucket",
        "concert_hub_holds_expired_total", "concert_hub_seats", "concert_hub_checkouts_total",
        "concert_hub_payment_duration_seconds_bucket", "concert_hub_refunds_total",
        "concert_hub_orders_cancelled_total", "concert_hub_checkin_scans_total",
        # waiting room
        "concert_hub_queue_waiting", "concert_hub_queue_active_shoppers",
        "concert_hub_queue_admissions_total", "concert_hub_queue_joins_total",
        "concert_hub_queue_position_push_lateness_seconds_bucket",
        # live data
        "concert_hub_seatmap_deltas_total", "concert_hub_seatmap_snapshot_bytes_bucket",
        "concert_hub_seatmap_delta_lag_seconds_bucket",
        # infrastructure
        "concert_hub_ready", "concert_hub_db_pool_size", "concert_hub_db_pool_in_use",
        "concert_hub_db_pool_waiting", "concert_hub_db_pool_checkout_wait_seconds_bucket",
        "concert_hub_redis_connected", "concert_hub_redis_reconnects_total",
        "concert_hub_event_loop_lag_seconds_bucket", "concert_hub_build_info",
        "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
        "process_max_fds",
    }  # fmt: skip
    assert expected <= fresh.series, sorted(expected - fresh.series)
    # Nothing appears later: dashboards and rules never wait for a family to exist.
    assert exported_families(fresh.series) == exported_families(exported)


def test_known_label_values_start_at_zero(fresh: Scrape) -> None:
    assert fresh.has("concert_hub_holds_total", outcome="conflict")
    assert fresh.value("concert_hub_holds_total", outcome="conflict") == 0
    assert fresh.has("concert_hub_checkouts_total", outcome="gateway_error")
    assert fresh.has("concert_hub_refunds_total", reason="recovery", outcome="failed")
    assert fresh.has("concert_hub_payment_duration_seconds_count", operation="refund")
    assert fresh.value("concert_hub_errors_total", reason="slow_consumer") == 0
    assert fresh.has("concert_hub_errors_total", reason="slow_consumer")
    build = [dict(labels) for (name, labels) in fresh.samples if name == "concert_hub_build_info"]
    assert len(build) == 1
    assert build[0]["engine"] == "in-process"
    assert build[0]["version"]
    assert build[0]["node_id"]


# --------------------------------------------------------------------------------------------
# The catalogue: what the scripted sale moved (the counts follow from the script's steps)


def final(sale: Sale) -> Scrape:
    assert sale.final is not None
    return sale.final


def test_holds_count_each_outcome_and_time_every_decision(sale: Sale) -> None:
    after = final(sale)
    outcomes = {
        "granted": 4, "conflict": 1, "invalid": 1, "not_found": 1, "over_limit": 1,
        "sale_closed": 1, "error": 0,
        "no_admission": 2,  # bob's without a token, and alice's after her purchase used hers up
    }  # fmt: skip
    got = {o: after.value("concert_hub_holds_total", outcome=o) for o in outcomes}
    assert got == outcomes
    assert after.value("concert_hub_hold_decision_seconds_count") == sum(outcomes.values())
    assert after.value("concert_hub_hold_decision_seconds_sum") > 0
    assert after.value("concert_hub_holds_expired_total") == 2


def test_checkouts_payments_refunds_and_cancellations_are_counted(sale: Sale) -> None:
    after = final(sale)
    outcomes = {
        "paid": 2, "replayed": 1, "declined": 1, "gateway_error": 1, "timeout": 0,
        "hold_lost": 0, "in_progress": 0, "rejected": 0, "error": 0,
    }  # fmt: skip
    got = {o: after.value("concert_hub_checkouts_total", outcome=o) for o in outcomes}
    assert got == outcomes
    # The replay called nobody: four charges; a refund for the failed charge and the cancel.
    charges = after.value("concert_hub_payment_duration_seconds_count", operation="charge")
    refunds = after.value("concert_hub_payment_duration_seconds_count", operation="refund")
    assert (charges, refunds) == (4, 2)
    assert after.value("concert_hub_refunds_total") == 2
    assert after.value("concert_hub_refunds_total", reason="order_cancelled",
                       outcome="refunded") == 1  # fmt: skip
    assert after.value("concert_hub_refunds_total", reason="payment_error",
                       outcome="no_charge") == 1  # fmt: skip
    assert after.value("concert_hub_orders_cancelled_total") == 1


def test_seats_by_status_are_those_of_the_live_event(sale: Sale) -> None:
    after, event = final(sale), str(sale.event_id)
    seats = {s: after.value("concert_hub_seats", event_id=event, status=s)
             for s in ("available", "held", "sold", "blocked")}  # fmt: skip
    assert seats == {"available": 19, "held": 0, "sold": 1, "blocked": 0}
    assert not after.has("concert_hub_seats", event_id=str(sale.closed_id))  # not live
    during = sale.while_waiting
    assert during is not None
    assert during.value("concert_hub_seats", event_id=event, status="available") == 20


def test_the_waiting_room_counts_joins_admissions_and_who_waits(sale: Sale) -> None:
    after, during, event = final(sale), sale.while_waiting, str(sale.event_id)
    assert during is not None
    assert during.value("concert_hub_queue_waiting", event_id=event) == 1
    assert during.value("concert_hub_queue_active_shoppers", event_id=event) == 2
    assert during.value("concert_hub_queue_admissions_total", event_id=event) == 2
    assert during.value("concert_hub_queue_position_push_lateness_seconds_count") >= 1
    # Alice's purchase used her admission up: carol took her place.
    assert after.value("concert_hub_queue_joins_total", event_id=event) == 3
    assert after.value("concert_hub_queue_admissions_total", event_id=event) == 3
    assert after.value("concert_hub_queue_waiting", event_id=event) == 0
    assert after.value("concert_hub_queue_active_shoppers", event_id=event) == 2


def test_seat_map_deltas_snapshots_and_their_lag_are_measured(sale: Sale) -> None:
    after = final(sale)
    assert after.value("concert_hub_seatmap_deltas_total") >= 1
    assert after.value("concert_hub_seatmap_snapshot_bytes_count") >= 1
    assert after.value("concert_hub_seatmap_snapshot_bytes_sum") > 0
    assert after.value("concert_hub_seatmap_delta_lag_seconds_count") >= SEAT_CHANGES
    assert after.value("concert_hub_errors_total", reason="slow_consumer") == 0


def test_http_requests_are_timed_by_route_template_and_status_class(sale: Sale) -> None:
    after = final(sale)
    name = "concert_hub_http_request_duration_seconds_count"

    def requests(method: str, route: str, status_class: str) -> float:
        return after.value(name, method=method, route=route, status_class=status_class)

    holds, checkouts = "/api/events/{event_id}/holds", "/api/holds/{hold_id}/checkout"
    assert (requests("POST", holds, "2xx"), requests("POST", holds, "4xx")) == (4, 7)
    assert [requests("POST", checkouts, c) for c in ("2xx", "4xx", "5xx")] == [3, 1, 1]
    assert requests("POST", "/api/orders/{order_id}/cancel", "2xx") == 1
    assert requests("GET", "unmatched", "4xx") >= 1
    routes = {dict(labels)["route"] for n, labels in after.samples if n == name}
    assert not any(str(sale.event_id) in route for route in routes), routes  # templates only
    assert after.value("concert_hub_http_requests_in_flight") == 1  # the scrape itself


def test_infrastructure_figures_are_reported(sale: Sale) -> None:
    after = final(sale)
    assert after.value("concert_hub_ready") == 1
    size = after.value("concert_hub_db_pool_size")
    mariadb = str(sale.node.flags["database_url"]).startswith("mysql")
    assert size == (60 if mariadb else 1)  # --db-pool-size 50 + 10 overflow; SQLite: 1
    assert 0 <= after.value("concert_hub_db_pool_in_use") <= size
    assert after.value("concert_hub_db_pool_waiting") >= 0
    assert after.value("concert_hub_db_pool_checkout_wait_seconds_count") > 0
    assert after.value("concert_hub_event_loop_lag_seconds_count") > 0
    # In-process: no Redis (tests/cluster/test_redis_outage.py checks a cluster node's).
    assert after.value("concert_hub_redis_connected") == 0
    assert after.value("concert_hub_redis_reconnects_total") == 0


def catalogue_rows(markdown: str) -> set[str]:
    """The metric names in the first column of the "Metrics" section's table."""
    section = re.search(r"^## Metrics\n(.*?)(?=^## )", markdown, re.MULTILINE | re.DOTALL)
    assert section is not None, "no '## Metrics' section"
    return set(re.findall(r"^\| `([a-z_:]+)(?:\{[^`]*\})?` \|", section[1], re.MULTILINE))


def exported_families(exported: set[str]) -> set[str]:
    """One name per family: a histogram's ``_bucket`` stands for the family."""
    return {
        n.removesuffix("_bucket")
        for n in exported
        if not n.endswith(("_sum", "_count")) and not n.startswith("python_")
    }


def test_the_runbook_lists_exactly_the_exported_families(exported: set[str]) -> None:
    rows = catalogue_rows(OPERATIONS.read_text(encoding="utf-8"))
    families = exported_families(exported)
    assert rows - families == set(), "documented but not exported"
    assert families - rows == set(), "exported but not documented"


def test_the_catalogue_check_rejects_a_stale_table(exported: set[str]) -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `concert_hub_holds_total"))
    assert catalogue_rows(text.replace(row + "\n", "")) != exported_families(exported)
    renamed = text.replace("| `concert_hub_ready`", "| `concert_hub_is_ready`")
    assert catalogue_rows(renamed) - exported_families(exported) == {"concert_hub_is_ready"}


# --------------------------------------------------------------------------------------------
# PromQL: the metric names an expression reads


#: Grafana's macros, replaced by what Prometheus would receive, before parsing.
GRAFANA_MACROS = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
}


def expand_grafana(expr: str) -> str:
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (parsed by promql-parser)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            names.update(
                m.value for m in node.matchers.matchers if m.name == "__name__"
            )  # fmt: skip
            return
        for attribute in ("expr", "lhs", "rhs", "param", "vector_selector"):
            child = getattr(node, attribute, None)
            if child is not None and not isinstance(child, str | int | float):
                walk(child)
        for argument in getattr(node, "args", None) or []:
            walk(argument)

    walk(promql_parser.parse(expand_grafana(expr)))
    return names


def test_metric_names_are_read_from_the_parse_tree() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, outcome) (rate(a_bucket{le="1"}[$__rate_interval])))'
        ' > on (instance) group_left b or -(c offset 5m) unless {__name__="d"}'
        " and max_over_time(e[5m:1m]) and topk(3, f)"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d", "e", "f"}
    with pytest.raises(ValueError):
        metric_names("rate(a[5m]")


# --------------------------------------------------------------------------------------------
# deploy/prometheus


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: run scripts/setup --test (Debian: prometheus)")
    return found


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )


@pytest.fixture
def prometheus_copy(tmp_path: Path) -> Path:
    """A scratch copy of deploy/prometheus to break."""
    return Path(shutil.copytree(PROMETHEUS_DIR, tmp_path / "prometheus"))


def test_promtool_accepts_the_config_rules_and_their_tests() -> None:
    for args in (
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "rules.yml"),
        ("test", "rules", "rules.test.yml"),
    ):
        result = run_promtool(*args, cwd=PROMETHEUS_DIR)
        assert result.returncode == 0, result.stdout + result.stderr


def nodes_scraped_query() -> str:
    """The Nodes dashboard's "Nodes ready" panel: its "scraped" line."""
    doc = load_dashboard(GRAFANA_DIR / "dashboards" / "nodes.json")
    (panel,) = [p for p in doc["panels"] if p.get("title") == "Nodes ready"]
    (target,) = [t for t in panel["targets"] if t.get("legendFormat") == "scraped"]
    return str(target["expr"])


def scraped_count_test(tmp_path: Path, expr: str) -> subprocess.CompletedProcess[str]:
    """promtool evaluates ``expr`` with three nodes, one of which cannot be scraped."""
    test = {
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [
                    {"series": 'up{job="concert-hub", instance="app1:8080"}', "values": "1x4"},
                    {"series": 'up{job="concert-hub", instance="app2:8080"}', "values": "1x4"},
                    {"series": 'up{job="concert-hub", instance="app3:8080"}', "values": "0x4"},
                    {"series": 'up{job="node", instance="host:9100"}', "values": "1x4"},
                ],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "30s",
                        "exp_samples": [{"labels": "{}", "value": 2}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "scraped.test.yml").write_text(json.dumps(test))
    return run_promtool("test", "rules", "scraped.test.yml", cwd=tmp_path)


def test_the_nodes_dashboard_counts_only_nodes_that_answer_their_scrape(tmp_path: Path) -> None:
    result = scraped_count_test(tmp_path, nodes_scraped_query())
    assert result.returncode == 0, result.stdout + result.stderr
    # count() would show the node that cannot be scraped too: the check notices.
    counted = scraped_count_test(tmp_path, 'count(up{job="concert-hub"})')
    assert counted.returncode != 0


@pytest.mark.parametrize(
    ("file", "old", "new", "args"),
    [
        ("prometheus.yml", "scrape_interval: 10s", "scrape_interval: ten", ("check", "config")),
        ("prometheus.yml", "  - rules.yml", "  - rule.yml", ("check", "config")),
        ("rules.yml", "[5m])))", "[5m]))", ("check", "rules")),
        ("rules.yml", "for: 2m", "for: two minutes", ("check", "rules")),
        # A threshold changed without its test: the unit tests catch it.
        ("rules.yml", "> 0.25", "> 2.5", ("test", "rules")),
        ("rules.yml", '{engine="redis"}', '{engine="in-process"}', ("test", "rules")),
        (
            "rules.yml",
            "runbook: docs/operations.md#concerthubpaymenterrors",
            "runbook: x",
            ("test", "rules"),
        ),
    ],
)
def test_promtool_rejects_a_broken_copy(
    prometheus_copy: Path, file: str, old: str, new: str, args: tuple[str, ...]
) -> None:
    path = prometheus_copy / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    target = {"config": "prometheus.yml", "rules": "rules.yml"}[args[1]]
    if args[0] == "test":
        target = "rules.test.yml"
    result = run_promtool(*args, target, cwd=prometheus_copy)
    assert result.returncode != 0, result.stdout


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces → -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_anchors(markdown: str) -> set[str]:
    return {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", markdown, re.MULTILINE)}


def rule_problems(rules: Any, tests: Any, anchors: set[str]) -> list[str]:
    """What the rules file owes its readers beyond what promtool checks."""
    problems = []
    alerts = {
        rule["alert"]: rule
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }  # fmt: skip
    missing = REQUIRED_ALERTS - set(alerts)
    if missing:
        problems.append(f"alerts missing: {sorted(missing)}")
    tested = {
        case["alertname"] for test in tests["tests"] for case in test.get("alert_rule_test", [])
    }
    for name, rule in alerts.items():
        if rule.get("labels", {}).get("severity") not in ("page", "warning"):
            problems.append(f"{name}: severity is not page or warning")
        runbook = rule.get("annotations", {}).get("runbook", "")
        page, _, anchor = runbook.partition("#")
        if page != "docs/operations.md" or anchor not in anchors:
            problems.append(f"{name}: runbook {runbook!r} is not a section of docs/operations.md")
        if name not in tested:
            problems.append(f"{name}: no unit test in rules.test.yml")
        if not rule.get("for"):
            problems.append(f"{name}: no `for`: a single bad scrape would page")
    return problems


@pytest.fixture(scope="module")
def rules() -> Any:
    return load_yaml((PROMETHEUS_DIR / "rules.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rule_tests() -> Any:
    return load_yaml((PROMETHEUS_DIR / "rules.test.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def anchors() -> set[str]:
    return runbook_anchors(OPERATIONS.read_text(encoding="utf-8"))


def test_every_alert_is_tested_and_has_a_runbook_section(
    rules: Any, rule_tests: Any, anchors: set[str]
) -> None:
    assert rule_problems(rules, rule_tests, anchors) == []


def _alert(rules: Any, name: str) -> dict[str, Any]:
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return dict(rule)
    raise KeyError(name)


PAYMENT_ERRORS, LOOP_LAG = "ConcertHubPaymentErrors", "ConcertHubEventLoopLag"


def test_rule_checks_reject_a_broken_copy(rules: Any, rule_tests: Any, anchors: set[str]) -> None:
    def problems_after(change: Any) -> list[str]:
        broken_rules, broken_tests = copy.deepcopy(rules), copy.deepcopy(rule_tests)
        change(broken_rules, broken_tests)
        return rule_problems(broken_rules, broken_tests, anchors)

    def set_annotation(r: Any, _: Any, value: str) -> None:
        for group in r["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == "ConcertHubEventLoopLag":
                    rule["annotations"]["runbook"] = value

    assert any(
        "runbook" in p
        for p in problems_after(lambda r, t: set_annotation(r, t, "docs/operations.md#nowhere"))
    )
    assert any("runbook" in p for p in problems_after(lambda r, t: set_annotation(r, t, "")))

    def drop_tests(_: Any, t: Any) -> None:
        for test in t["tests"]:
            cases = test.get("alert_rule_test", [])
            test["alert_rule_test"] = [c for c in cases if c["alertname"] != PAYMENT_ERRORS]

    assert any("no unit test" in p for p in problems_after(drop_tests))

    def drop_alert(r: Any, _: Any) -> None:
        for group in r["groups"]:
            group["rules"] = [
                x for x in group["rules"] if x.get("alert") != "ConcertHubEventLoopLag"
            ]

    assert any("alerts missing" in p for p in problems_after(drop_alert))
    assert _alert(rules, "ConcertHubEventLoopLag")["labels"]["severity"] == "warning"


def recorded_names(rules: Any) -> set[str]:
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def test_rule_expressions_name_only_exported_or_recorded_metrics(
    rules: Any, exported: set[str]
) -> None:
    allowed = exported | PROMETHEUS_SERIES | recorded_names(rules)
    for group in rules["groups"]:
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - allowed
            assert not unknown, f"{rule.get('alert') or rule.get('record')}: {sorted(unknown)}"


# --------------------------------------------------------------------------------------------
# deploy/grafana


def load_dashboard(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


@functools.cache
def provisioned_datasource() -> dict[str, Any]:
    path = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
    doc = load_yaml(path.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    (source,) = doc["datasources"]
    assert isinstance(source, dict)
    return source


def _grid_problems(panels: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    cells: dict[tuple[int, int], Any] = {}
    for panel in panels:
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in "hwxy"):
            problems.append(f"panel {panel.get('id')}: gridPos needs integer h, w, x, y")
            continue
        if grid["w"] < 1 or grid["h"] < 1 or grid["x"] < 0 or grid["x"] + grid["w"] > 24:
            problems.append(f"panel {panel['id']}: gridPos {grid} is off the 24-column grid")
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in cells:
                    problems.append(f"panels {cells[(x, y)]} and {panel['id']} overlap")
                    break
                cells[(x, y)] = panel["id"]
            else:
                continue
            break
    return problems


def dashboard_queries(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    queries = [
        (f"panel {panel.get('title')!r} {target.get('refId')}", target.get("expr", ""))
        for panel in doc.get("panels", [])
        for target in panel.get("targets", [])
    ]
    for variable in doc.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query)
            found = re.fullmatch(r"label_values\((.+),\s*\w+\)", text.strip())
            queries.append((f"variable {variable.get('name')}", found[1] if found else text))
    return queries


def dashboard_problems(doc: dict[str, Any], exported: set[str]) -> list[str]:
    """What would keep Grafana from loading the dashboard as it is, or show an empty panel."""
    problems = []
    for key, kind in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list)):
        if not isinstance(doc.get(key), kind):
            problems.append(f"{key} is not a {kind.__name__}")
    if problems:
        return problems
    if not 36 <= doc["schemaVersion"] <= 41:
        problems.append(f"schemaVersion {doc['schemaVersion']} is not one Grafana 10/11 writes")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", doc["uid"]):
        problems.append(f"uid {doc['uid']!r} is not a Grafana uid")
    if doc.get("id") is not None:
        problems.append("id is set: provisioning assigns it")
    variables = {v.get("name"): v for v in doc.get("templating", {}).get("list", [])}
    datasource = variables.get("datasource", {})
    if datasource.get("type") != "datasource" or datasource.get("query") != "prometheus":
        problems.append("no `datasource` variable of type datasource for prometheus")
    elif datasource.get("current", {}).get("value") != provisioned_datasource()["uid"]:
        problems.append("the datasource variable's default is not the provisioned data source")
    ids = [p.get("id") for p in doc["panels"]]
    if len(set(ids)) != len(ids) or not all(isinstance(i, int) for i in ids):
        problems.append(f"panel ids are not unique integers: {ids}")
    problems += _grid_problems(doc["panels"])
    wanted = {"type": "prometheus", "uid": "${datasource}"}
    for panel in doc["panels"]:
        where = f"panel {panel.get('title')!r}"
        if not panel.get("type") or not panel.get("title"):
            problems.append(f"{where}: no type or title")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no query")
        if panel.get("datasource") != wanted:
            problems.append(f"{where}: data source is not the ${{datasource}} variable")
        if any(t.get("datasource") != wanted for t in targets):
            problems.append(f"{where}: a query's data source is not the ${{datasource}} variable")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs):
            problems.append(f"{where}: duplicate refId")
    allowed = exported | PROMETHEUS_SERIES
    for where, expr in dashboard_queries(doc):
        try:
            unknown = metric_names(expr) - allowed
        except ValueError as exc:
            problems.append(f"{where}: PromQL does not parse: {exc}")
            continue
        if unknown:
            problems.append(f"{where}: names metrics no node exports: {sorted(unknown)}")
    return problems


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_is_a_valid_model_querying_only_exported_metrics(
    path: Path, exported: set[str]
) -> None:
    assert dashboard_problems(load_dashboard(path), exported) == []


def test_the_two_dashboards_show_what_the_issue_asks_for() -> None:
    docs = {d["uid"]: d for d in map(load_dashboard, DASHBOARDS)}
    assert set(docs) == set(DASHBOARD_COVERAGE)
    for uid, wanted in DASHBOARD_COVERAGE.items():
        queried = {n for _, expr in dashboard_queries(docs[uid]) for n in metric_names(expr)}
        assert wanted <= queried, (uid, sorted(wanted - queried))


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")
    target: Any = doc
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is None:
        del target[int(last) if isinstance(target, list) else last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("schemaVersion", None, "schemaVersion"),
        ("schemaVersion", "39", "schemaVersion"),
        ("uid", "has spaces in it", "uid"),
        ("panels/1/id", 1, "unique"),
        ("panels/1/gridPos/x", 0, "overlap"),
        ("panels/2/gridPos/w", 30, "24-column"),
        ("panels/0/datasource", {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}, "variable"),
        ("panels/0/targets/0/datasource", {"type": "prometheus", "uid": "x"}, "variable"),
        ("panels/0/targets/0/expr", "sum(concert_hub_seats_left)", "no node exports"),
        ("panels/0/targets/0/expr", "sum(rate(concert_hub_holds_total[5m])", "does not parse"),
        ("panels/0/targets", [], "no query"),
        ("templating/list/0/query", "loki", "datasource"),
        ("templating/list/0/current/value", "prometheus", "provisioned"),
        ("id", 7, "provisioning"),
    ],
)
def test_dashboard_checks_reject_a_broken_copy(
    path: str, value: Any, expected: str, exported: set[str]
) -> None:
    doc = load_dashboard(GRAFANA_DIR / "dashboards" / "on-sale.json")
    _set(doc, path, value)
    problems = dashboard_problems(doc, exported)
    assert any(expected in p for p in problems), problems


def test_a_variable_naming_an_unknown_metric_is_refused(exported: set[str]) -> None:
    doc = load_dashboard(GRAFANA_DIR / "dashboards" / "on-sale.json")
    variable = next(v for v in doc["templating"]["list"] if v["name"] == "event_id")
    variable["query"]["query"] = "label_values(concert_hub_events, event_id)"
    assert any("variable event_id" in p for p in dashboard_problems(doc, exported))


def test_provisioning_points_grafana_at_prometheus_and_the_dashboards() -> None:
    source = provisioned_datasource()
    assert source["type"] == "prometheus"
    assert source["uid"] == "concert-hub-prometheus"
    providers = load_yaml(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "concert-hub.yml").read_text()
    )
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards")
