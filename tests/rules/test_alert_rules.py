"""The alert rules: promtool checks and unit-tests the shipped file and the chart's PrometheusRule; every alert
is complete (for, severity, summary, a description naming job and namespace, a runbook that exists)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from exporter.prom_servers import binary
from rules.promtool_cases import promtool_tests

from atft_cli.render import CHART_DIR, REPO_ROOT, ChartError, render_manifests

pytestmark = pytest.mark.integration

ALERTS = CHART_DIR / "files" / "alerts.yaml"
RUNBOOK_BASE = "https://github.com/atft/atft/blob/main/docs/runbooks/"
RELEASE, NAMESPACE = "rel", "ml"
# every for window and threshold moved away from the defaults, to prove the values reach the rules
OVERRIDES = {
    "vanishingGradient.for": "2m",
    "degeneracyResets.for": "3m",
    "degeneracyResets.threshold": "5",
    "degeneracyResets.window": "2h",
    "predictionsCollapsed.for": "4m",
    "nonFinite.for": "2m",
    "noLearningSignal.for": "6m",
    "weakLearningSignal.for": "7m",
    "trainingStalled.for": "2m",
    "trainingStalled.afterSeconds": "600",
    "exporterNotPushing.for": "3m",
    "exporterNotPushing.afterSeconds": "120",
    "runFailed.for": "3m",
    "runPreempted.for": "20m",
    "runPreempted.severity": "info",
    "vanishingGradient.severity": "warning",
}


def _rules(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"]]


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *map(str, args)], capture_output=True, text=True, timeout=120)


def _test_rules(rules_file: Path, rules: list[dict[str, Any]], job: str) -> None:
    tests = rules_file.with_name(rules_file.stem + ".test.yaml")
    tests.write_text(yaml.safe_dump(promtool_tests(rules_file.name, rules, job), sort_keys=False, width=1000))
    done = _promtool("test", "rules", tests)
    assert done.returncode == 0, done.stdout + done.stderr


def test_shipped_rules_pass_promtool_check() -> None:
    done = _promtool("check", "rules", ALERTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 10 rules found" in done.stdout


def test_every_shipped_alert_fires_exactly_at_its_for_boundary_and_not_on_healthy_series(tmp_path: Path) -> None:
    rules_file = tmp_path / "alerts.yaml"
    rules_file.write_text(ALERTS.read_text())
    _test_rules(rules_file, _rules(yaml.safe_load(ALERTS.read_text())["groups"]), job="atft")


def test_every_alert_is_complete_and_has_its_runbook() -> None:
    rules = _rules(yaml.safe_load(ALERTS.read_text())["groups"])
    assert len({r["alert"] for r in rules}) == len(rules) == 10
    for rule in rules:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        notes = rule["annotations"]
        assert set(notes) == {"summary", "description", "runbook_url"}, rule["alert"]
        for label in ("job", "namespace", "run_id"):
            assert f"{{{{ $labels.{label} }}}}" in notes["description"], (rule["alert"], label)
        assert notes["runbook_url"].startswith(RUNBOOK_BASE), rule["alert"]
        runbook = REPO_ROOT / "docs" / "runbooks" / notes["runbook_url"].removeprefix(RUNBOOK_BASE)
        text = runbook.read_text()  # exists
        assert f"# {rule['alert']}" in text and "## What it means" in text and "## What to do" in text, runbook
    components = rules[0]["annotations"]["description"]
    assert "{{ $labels.component }}" in components  # the vanishing-gradient alert names the component


def _rendered_rule(*sets: str) -> dict[str, Any]:
    objs = render_manifests(None, sets=sets, name=RELEASE, namespace=NAMESPACE)
    (rule,) = [o for o in objs if o["kind"] == "PrometheusRule"]
    return rule


def test_chart_rule_carries_the_values_and_passes_promtool(tmp_path: Path) -> None:
    sets = [f"monitoring.prometheusRule.alerts.{k}={v}" for k, v in OVERRIDES.items()]
    sets.append("monitoring.prometheusRule.runbookBaseUrl=https://wiki.example/atft")
    rule = _rendered_rule(*sets)
    rules = _rules(rule["spec"]["groups"])
    by_name = {r["alert"]: r for r in rules}
    assert by_name["ATFTVanishingGradient"]["for"] == "2m"
    assert by_name["ATFTVanishingGradient"]["labels"]["severity"] == "warning"
    assert "[2h]" in by_name["ATFTDegeneracyResets"]["expr"] and ") > 5" in by_name["ATFTDegeneracyResets"]["expr"]
    assert by_name["ATFTNoLearningSignal"]["labels"]["severity"] == "critical"
    assert by_name["ATFTWeakLearningSignal"]["for"] == "7m"
    assert by_name["ATFTRunPreempted"]["for"] == "20m" and by_name["ATFTRunPreempted"]["labels"]["severity"] == "info"
    assert "> 600" in by_name["ATFTTrainingStalled"]["expr"] and "> 120" in by_name["ATFTExporterNotPushing"]["expr"]
    assert all(r["annotations"]["runbook_url"].startswith("https://wiki.example/atft/") for r in rules)
    rules_file = tmp_path / "chart-rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    done = _promtool("check", "rules", rules_file)
    assert done.returncode == 0, done.stdout + done.stderr
    _test_rules(rules_file, rules, job=RELEASE)


def test_chart_rule_alerts_only_on_its_own_release(tmp_path: Path) -> None:
    """Series pushed by another release (another job label) do not fire this release's alerts."""
    rules = _rules(_rendered_rule()["spec"]["groups"])
    rules_file = tmp_path / "chart-rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "atft-training", "rules": rules}]}))
    other = promtool_tests(rules_file.name, rules, job="other-release")
    for test in other["tests"]:  # the same series under another job: nothing may fire
        for check in test["alert_rule_test"]:
            check["exp_alerts"] = []
    tests = tmp_path / "other.test.yaml"
    tests.write_text(yaml.safe_dump(other, sort_keys=False, width=1000))
    done = _promtool("test", "rules", tests)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("monitoring.prometheusRule.alerts.vanishingGradient.for=5 minutes", "vanishingGradient.for"),
        ("monitoring.prometheusRule.alerts.nonFinite.severity=page", "nonFinite.severity"),
        ("monitoring.prometheusRule.alerts.trainingStalled.afterSeconds=5", "trainingStalled.afterSeconds"),
        ("monitoring.prometheusRule.alerts.runFailed.fro=1m", "fro"),
    ],
)
def test_schema_refuses_bad_alert_values_naming_the_key(override: str, named: str) -> None:
    with pytest.raises(ChartError) as info:
        render_manifests(None, sets=[override], name=RELEASE, namespace=NAMESPACE)
    assert named.split(".")[-1] in str(info.value) and "monitoring" in str(info.value)
