"""The shipped monitoring: alert rules, their behaviour, and the Grafana dashboard's queries.

The rules in docker/alerts.yml are checked by promtool (Debian's `prometheus` package; CI
installs it) and exercised by tests/monitoring/alerts_test.yml: each alert fires on the series
that should fire it and stays quiet on the others. Every query of the rules and of the
dashboard names only metrics, and labels, that the daemon really exports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from smppgw.gateway.metrics import PrometheusObserver

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
ALERTS = DOCKER / "alerts.yml"
ALERT_TESTS = ROOT / "tests" / "monitoring" / "alerts_test.yml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "smppgw.json"

# Series Prometheus makes itself, and labels it (or the scrape config) adds to every series.
PROMETHEUS_SERIES = {"up": {"instance", "job"}}
TARGET_LABELS = {"instance", "job"}
METRIC = re.compile(r"\b((?:smppgw|process)_[a-z0-9_]+|up)\b(?:\{([^}]*)\})?")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")


def promtool() -> str | None:
    path = shutil.which("promtool")
    if path is None and os.environ.get("CI"):
        pytest.fail("promtool is missing: CI installs Debian's prometheus package (see .ci/run)")
    return path


def exported() -> dict[str, set[str]]:
    """Sample name -> label names, for every metric the daemon's registry exports."""
    observer = PrometheusObserver()
    names: dict[str, set[str]] = {}
    collectors = observer.registry._collector_to_names  # the registry's own map
    for collector, sample_names in collectors.items():
        labels = set(collector._labelnames) if isinstance(collector, MetricWrapperBase) else set()
        for family in collector.collect():
            labels |= {key for sample in family.samples for key in sample.labels}
        for name in sample_names:
            names[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return names


def alert_expressions() -> Iterator[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule["alert"], rule["expr"]


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def unknown_names(expr: str, known: dict[str, set[str]]) -> list[str]:
    """Metrics and labels an expression uses that the daemon does not export."""
    problems = []
    used = METRIC.findall(expr)
    metric_labels: set[str] = set()
    for name, matchers in used:
        labels = known.get(name, PROMETHEUS_SERIES.get(name))
        if labels is None:
            problems.append(f"metric {name}")
            continue
        metric_labels |= labels
        problems += [
            f"label {label} of {name}"
            for label in MATCHER_LABEL.findall(matchers)
            if label not in labels | TARGET_LABELS
        ]
    for grouping in GROUPING.findall(expr):
        problems += [
            f"grouping label {label}"
            for label in (part.strip() for part in grouping.split(","))
            if label and label not in metric_labels | TARGET_LABELS
        ]
    if not used:
        problems.append("no metric at all")
    return problems


def test_the_alert_rules_pass_promtool_check() -> None:
    tool = promtool()
    if tool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    result = subprocess.run(  # noqa: S603  # promtool found on PATH, fixed arguments
        [tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_on_its_fault_and_stays_quiet_otherwise() -> None:
    tool = promtool()
    if tool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    result = subprocess.run(  # noqa: S603  # promtool found on PATH, fixed arguments
        [tool, "test", "rules", ALERT_TESTS.name],
        cwd=ALERT_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_exercised_by_the_rule_tests() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert {name for name, _ in alert_expressions()} == tested


def test_alert_rules_query_only_what_the_daemon_exports() -> None:
    known = exported()
    problems = {name: unknown_names(expr, known) for name, expr in alert_expressions()}
    assert {name: p for name, p in problems.items() if p} == {}


def test_dashboard_queries_name_only_what_the_daemon_exports() -> None:
    known = exported()
    problems = {title: unknown_names(expr, known) for title, expr in dashboard_expressions()}
    assert {title: p for title, p in problems.items() if p} == {}


def test_the_query_check_catches_a_misspelt_metric_or_label() -> None:
    known = exported()
    assert unknown_names('sum by (server) (smppgw_bind{state="bound"})', known) == [
        "metric smppgw_bind",
        "grouping label server",
    ]
    assert unknown_names('sum by (sever) (smppgw_binds{stat="bound"})', known) == [
        "label stat of smppgw_binds",
        "grouping label sever",
    ]


def test_the_dashboard_shows_every_smppgw_metric() -> None:
    shown = {name for _, expr in dashboard_expressions() for name, _ in METRIC.findall(expr)}
    families = {
        re.sub(r"_(total|bucket|sum|count|created)$", "", name)
        for name in exported()
        if name.startswith("smppgw_")
    }
    shown_families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in shown}
    assert families - shown_families <= {"smppgw_info", "smppgw_store_commit_records"}


def test_compose_provisions_the_rules_the_dashboard_and_its_data_source() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    prometheus = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    mounts = {
        target.removesuffix(":ro").split(":")[0]: (DOCKER / source).resolve()
        for service in compose["services"].values()
        for source, _, target in (v.partition(":") for v in service.get("volumes", []))
        if source.startswith(".")
    }
    # Prometheus loads the rule file mounted at the path its configuration names.
    (rule_file,) = prometheus["rule_files"]
    assert mounts[rule_file] == ALERTS
    # Grafana's provisioning folder carries a data source pointing at the Prometheus service,
    # and a dashboard provider whose path is where the dashboards are mounted.
    provisioning = mounts["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "smppgw.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert (mounts[path] / DASHBOARD.name).resolve() == DASHBOARD
    assert "grafana" in compose["services"]
    assert "prometheus" in compose["services"]["grafana"]["depends_on"]
