"""The prerequisite graph next to the probe table: a subset runs what it needs, every skip a
probe reports is explained by a prerequisite the graph names, and an unexplained skip is a
warning, never "ok". Without an engine and without Ollama (the engine tests cover the rest)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config.settings import Settings
from handlers.check import run_check
from handlers.probes import (
    FINDING_IDS,
    REQUIRES,
    account_for_skips,
    prerequisites,
    with_prerequisites,
)
from handlers.results import Finding, Status


def test_the_graph_names_only_known_findings_and_has_no_cycle() -> None:
    assert set(REQUIRES) == set(FINDING_IDS)
    for finding_id, needs in REQUIRES.items():
        assert set(needs) <= set(FINDING_IDS), finding_id
        assert finding_id not in prerequisites(finding_id), f"{finding_id} needs itself"
    assert prerequisites("dify.base_url") == ("docker.engine", "dify.project", "dify.containers")
    assert with_prerequisites(()) == FINDING_IDS
    assert with_prerequisites(("host.resources",)) == ("host.resources",)


@pytest.fixture(scope="module")
def nothing_up(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    tmp = tmp_path_factory.mktemp("down")
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        docker_host=f"unix://{tmp}/none.sock",
        ollama_url="http://127.0.0.1:9",
        check_timeout=1,
        state_dir=Path(tmp) / "state",
    )


@pytest.mark.parametrize("finding_id", FINDING_IDS)
def test_every_skip_names_a_prerequisite_of_the_graph(
    nothing_up: Settings, finding_id: str
) -> None:
    """Each probe alone, the engine and Ollama down: it and its prerequisites are reported;
    whatever skips names (`needs X`) a finding the graph lists for it, and the verdict is
    never ok when the probe itself could not run."""
    report = run_check(nothing_up, (finding_id,))
    ids = [f.id for f in report.findings]
    assert ids == list(with_prerequisites((finding_id,)))
    for finding in report.findings:
        if finding.status is Status.SKIP:
            named = re.findall(r"needs ([a-z_]+\.[a-z_]+)", finding.summary)
            assert set(named) <= set(prerequisites(finding.id)), (finding.id, finding.summary)
    asked = report.finding(finding_id)
    assert asked is not None
    if asked.status is Status.SKIP:
        assert report.exit_code == 1 and report.status is not Status.OK


def test_an_unexplained_skip_is_a_warning() -> None:
    findings = (
        Finding("docker.engine", Status.OK, "up"),
        Finding("dify.project", Status.OK, "found"),
        Finding("env.file", Status.OK, ".env present"),
        Finding("dify.containers", Status.OK, "running"),
        Finding("env.drift", Status.SKIP, "cannot read the compose files (bad YAML)"),
        Finding("ollama.bind", Status.SKIP, "OLLAMA_URL is not on this host"),
    )
    accounted = {f.id: f for f in account_for_skips(findings)}
    drift = accounted["env.drift"]
    assert drift.status is Status.WARN and drift.summary.startswith("not checked: ")
    assert accounted["ollama.bind"].status is Status.SKIP  # no prerequisite: not applicable
    explained = account_for_skips(
        (Finding("docker.engine", Status.FAIL, "down"), Finding("dify.project", Status.SKIP, "x"))
    )
    assert explained[1].status is Status.SKIP
