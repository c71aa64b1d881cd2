"""The `dify-ollama` entry point as a user runs it: a real subprocess, real exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handlers.report_text import render_text
from handlers.results import Finding, Report, Status
from tests.rig.cli_process import run_cli, run_python


def test_unknown_subcommand_is_usage_error() -> None:
    proc = run_cli("frobnicate")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr and "check" in proc.stderr


def test_unknown_finding_id_is_usage_error() -> None:
    proc = run_cli("check", "--only", "dns.nope")
    assert proc.returncode == 2
    assert "unknown finding id" in proc.stderr and "container.dns" in proc.stderr


def test_bad_setting_names_variable_and_hides_value(tmp_path: Path) -> None:
    proc = run_cli("check", env={"CHECK_TIMEOUT": "xoxb-123-secret-abc"})
    assert proc.returncode == 2
    assert "CHECK_TIMEOUT" in proc.stderr
    assert "xoxb-123-secret-abc" not in proc.stderr + proc.stdout


def test_bad_url_setting(tmp_path: Path) -> None:
    proc = run_cli("check", env={"OLLAMA_URL": "ftp://h:1"})
    assert proc.returncode == 2 and "OLLAMA_URL" in proc.stderr


def test_bot_env_file_is_read_and_dify_env_refused(tmp_path: Path) -> None:
    (tmp_path / "dify-ollama-bot.env").write_text("CHECK_TIMEOUT=-1\n")
    proc = run_cli("check", cwd=tmp_path)
    assert proc.returncode == 2 and "CHECK_TIMEOUT" in proc.stderr
    dify_env = tmp_path / ".env"
    dify_env.write_text("SECRET_KEY=abc\n")
    proc = run_cli("check", env={"DIFY_OLLAMA_BOT_ENV": str(dify_env)})
    assert proc.returncode == 2 and "looks like Dify's .env" in proc.stderr


def test_engine_missing_gives_failing_report(tmp_path: Path) -> None:
    proc = run_cli(
        "check",
        "--json",
        env={
            "DOCKER_HOST": f"unix://{tmp_path}/none.sock",
            "OLLAMA_URL": "http://127.0.0.1:9",
            "CHECK_TIMEOUT": "1",
        },
    )
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["status"] == "fail"
    engine = data["findings"][0]
    assert engine["id"] == "docker.engine" and engine["status"] == "fail"
    assert "does not exist" in engine["summary"]


def test_text_report_lists_evidence_and_remedy() -> None:
    report = Report(
        (
            Finding("docker.engine", Status.OK, "Docker answers"),
            Finding(
                "dify.base_url",
                Status.FAIL,
                "base URL wrong",
                "evidence here",
                "do this",
                fixable=True,
            ),
            Finding("ollama.models", Status.SKIP, "needs ollama.host"),
        ),
        123,
        {"host": "h", "dify_dir": "/srv/dify/docker"},
    )
    text = render_text(report)
    assert text.startswith("Dify -> Ollama check: FAIL (1 failing, 0 warning) in 123 ms")
    assert "evidence here" in text and "do this" in text and "fix-env" in text
    assert "skip  ollama.models" in text


@pytest.mark.parametrize("status", [Status.OK, Status.WARN])
def test_exit_code_zero_unless_failure(status: Status) -> None:
    assert Report((Finding("x", status, "s"),), 1).exit_code == 0
    assert Report((Finding("x", Status.FAIL, "s"),), 1).exit_code == 1


NO_ENGINE_NO_OLLAMA = {"OLLAMA_URL": "http://127.0.0.1:9", "CHECK_TIMEOUT": "1"}


@pytest.mark.parametrize("as_json", [False, True])
def test_a_subset_runs_and_reports_its_prerequisites(tmp_path: Path, as_json: bool) -> None:
    """`check --only dify.base_url` with the engine down: the probe cannot run, and what it
    needs (docker.engine) is reported failing with it; never "OK", exit 1."""
    env = {**NO_ENGINE_NO_OLLAMA, "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    args = ("check", "--only", "dify.base_url") + (("--json",) if as_json else ())
    proc = run_cli(*args, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    if as_json:
        data = json.loads(proc.stdout)
        assert data["status"] == "fail"
        shown = {f["id"]: f["status"] for f in data["findings"]}
    else:
        assert proc.stdout.startswith("Dify -> Ollama check: FAIL")
        shown = {
            line.split()[1]: line.split()[0].lower()
            for line in proc.stdout.splitlines()
            # a finding's row starts with its status (wrapped summaries continue below it)
            if line.startswith("  ")
            and len(line.split()) > 1
            and line.split()[0] in ("ok", "WARN", "FAIL", "skip")
        }
    assert shown["docker.engine"] == "fail"
    assert shown["dify.base_url"] == "skip"
    assert list(shown)[:4] == ["docker.engine", "dify.project", "dify.containers", "dify.base_url"]


def test_a_report_of_nothing_but_skips_is_not_ok() -> None:
    report = Report((Finding("ollama.bind", Status.SKIP, "OLLAMA_URL is not on this host"),), 1)
    assert report.status is Status.SKIP and report.exit_code == 1
    assert render_text(report).startswith("Dify -> Ollama check: SKIP")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PORT", "99999"), ("WORKER_THREADS", "0"), ("SLACK_API_URL", "ftp://x"), ("OPERATORS", "")],
)
def test_a_setting_the_command_never_reads_is_not_its_error(
    tmp_path: Path, variable: str, value: str
) -> None:
    """`check` reads no Slack server setting: a bad PORT is the bot's problem, not check's.
    `serve`, which reads it, still refuses it in one line."""
    env = {
        **NO_ENGINE_NO_OLLAMA,
        "DOCKER_HOST": f"unix://{tmp_path}/none.sock",
        "STATE_DIR": str(tmp_path),
        variable: value,
    }
    proc = run_cli("check", "--only", "host.resources", env=env)
    assert proc.returncode in (0, 1), proc.stderr
    assert "configuration error" not in proc.stderr
    if variable in ("PORT", "WORKER_THREADS", "SLACK_API_URL"):
        served = run_cli("serve", "--check-config", env=env)
        assert served.returncode == 2 and variable in served.stderr, served.stderr
        assert "configuration error" in served.stderr


def test_a_setting_the_command_reads_is_still_checked(tmp_path: Path) -> None:
    proc = run_cli("logs", "api", env={"DOCKER_HOST": "tcp://h:99999999", "CHECK_TIMEOUT": "0"})
    assert proc.returncode == 2 and "CHECK_TIMEOUT" in proc.stderr
    assert run_cli("fix-env", env={"FIX_OLLAMA_URL": "nope"}).returncode == 2


LOADED = (
    "import sys\n"
    "from cli.main import main\n"
    "main(sys.argv[1:])\n"
    "heavy = ('slack_sdk', 'slack_bolt', 'gunicorn', 'yaml', 'matplotlib')\n"
    "print('LOADED', ','.join(sorted(m for m in heavy if m in sys.modules)))\n"
)


@pytest.mark.parametrize("only", ["", "docker.engine,ollama.host,host.resources"])
def test_check_imports_only_what_it_uses(tmp_path: Path, only: str) -> None:
    """`check` loads neither Slack nor gunicorn (issue 12); PyYAML only when the compose
    files are read (env.drift, with a project found), so not here. (pydantic-settings, the
    settings model the product is built on, is loaded: see docs/performance.md.)"""
    env = {"DOCKER_HOST": f"unix://{tmp_path}/none.sock", "OLLAMA_URL": "http://127.0.0.1:9"}
    args = ["-c", LOADED, "check", "--json", *(["--only", only] if only else [])]
    proc = run_python(*args, env=env)
    assert proc.stdout.rstrip().endswith("LOADED"), proc.stdout[-300:] + proc.stderr[-300:]
