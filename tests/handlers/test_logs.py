"""fetch_logs against the private engine: labelled containers that look like a Dify project.

Each test starts its own small containers (busybox, unique names, compose labels pointing at a
temp folder holding docker-compose.yaml and a .env made from Dify's real .env.example plus
canary secrets; `LogProject` in tests/rig/log_containers.py) and removes them afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from handlers.logs import (
    MAX_LINE_CHARS,
    LogsUsageError,
    UnknownService,
    fetch_logs,
    parse_request,
    parse_since,
)
from handlers.results import HandlerError
from tests.rig.log_containers import Canaries, LogProject, assert_no_canary, printf_script


@pytest.fixture
def log_project(docker_engine: Any, tmp_path: Path) -> Iterator[LogProject]:
    project = LogProject(docker_engine, tmp_path, Canaries())
    try:
        yield project
    finally:
        project.cleanup()


@pytest.fixture
def canary_api(log_project: LogProject) -> LogProject:
    """api logging every canary (plus ANSI colours and invalid UTF-8), worker logging a line."""
    lines = [
        *log_project.canaries.log_lines(),
        r"\033[31mERROR\033[0m \033[1;32mcoloured\033[0m line\033]0;title\007 end",
        r"bad utf8 \377\376 here \300\257 tab\there",
        "ready",
    ]
    api = log_project.add("api", printf_script(lines))
    log_project.add("worker", printf_script(["worker up"]))
    log_project.wait_for_line(api, b"ready")
    return log_project


# --- real engine ---------------------------------------------------------------------------------
@pytest.mark.docker
def test_no_canary_survives_and_text_is_clean(canary_api: LogProject) -> None:
    result = fetch_logs(canary_api.settings(), "api", 100)
    assert_no_canary(result.text, canary_api.canaries)
    assert result.text.count("[REDACTED]") >= 12
    assert result.redactions >= 12
    # What identifies the value stays readable.
    assert "Authorization: Bearer [REDACTED]" in result.text
    assert "postgresql://postgres:[REDACTED]@db:5432/dify" in result.text
    assert "password=[REDACTED]" in result.text
    assert 'user="admin" db=dify' in result.text  # placeholders of .env.example are not secrets
    # ANSI codes and control characters gone, invalid UTF-8 replaced, tab kept.
    assert "\x1b" not in result.text and "\x07" not in result.text
    assert "ERROR coloured line end" in result.text
    assert "bad utf8 \ufffd\ufffd here \ufffd\ufffd tab\there" in result.text
    assert result.lines_returned == result.lines_fetched == 11
    assert result.container == f"{canary_api.name}-api-1" and result.state == "running"
    assert result.services == ("api", "worker") and not result.truncated


@pytest.mark.docker
def test_tail_is_applied_by_the_engine(log_project: LogProject) -> None:
    api = log_project.add(
        "api", "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done; echo done; sleep 600"
    )
    log_project.wait_for_line(api, b"done")
    result = fetch_logs(log_project.settings(), "api", 10)
    assert result.lines == [f"line {i}" for i in range(291, 300)] + ["done"]
    assert result.lines_fetched == 10  # the engine sent 10 lines, not 301


@pytest.mark.docker
def test_grep_filters_within_the_fetched_lines(log_project: LogProject) -> None:
    api = log_project.add(
        "api",
        "i=0; while [ $i -lt 100 ]; do echo Line $i; i=$((i+1)); done; echo done; sleep 600",
    )
    log_project.wait_for_line(api, b"done")
    result = fetch_logs(log_project.settings(), "api", 20, grep="line 8")
    # Lines 80..89 hold "line 8" (case-insensitive), only 81..89 are within the last 20 lines.
    assert result.lines == [f"Line {i}" for i in range(81, 90)]
    assert (result.lines_fetched, result.lines_returned) == (20, 9)
    none = fetch_logs(log_project.settings(), "api", 5, grep="line 8")
    assert none.empty and "none of the last 5 lines contains 'line 8'" in none.notes


@pytest.mark.docker
def test_grep_cannot_probe_a_secret(canary_api: LogProject) -> None:
    secret = canary_api.canaries.db_password
    # grep runs on the redacted text: neither the secret nor a prefix of it finds its line.
    assert fetch_logs(canary_api.settings(), "api", 100, grep=secret[:12]).empty
    result = fetch_logs(canary_api.settings(), "api", 100, grep=secret)
    assert result.empty
    # The grep text is echoed back (headers, notes): a typed secret is redacted there too.
    assert result.grep == "[REDACTED]" and secret not in " ".join(result.notes)


@pytest.mark.docker
def test_since_is_applied_by_the_engine(log_project: LogProject) -> None:
    api = log_project.add("api", "echo old line; sleep 3; echo new line; sleep 600")
    log_project.wait_for_line(api, b"new line")
    assert fetch_logs(log_project.settings(), "api", 50, since="2s").lines == ["new line"]
    at = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    assert fetch_logs(log_project.settings(), "api", 50, since=at).lines == ["new line"]
    assert fetch_logs(log_project.settings(), "api", 50, since="1h").lines == [
        "old line",
        "new line",
    ]


@pytest.mark.docker
def test_unknown_service_lists_the_valid_ones(canary_api: LogProject) -> None:
    with pytest.raises(UnknownService) as caught:
        fetch_logs(canary_api.settings(), "apii", 10)
    assert caught.value.services == ("api", "worker")
    assert "apii" in str(caught.value) and "api, worker" in str(caught.value)


@pytest.mark.docker
def test_stopped_container_still_has_logs(log_project: LogProject) -> None:
    api = log_project.add("api", printf_script(["starting", "fatal: cannot connect"], "exit 3"))
    log_project.wait_exited(api)
    result = fetch_logs(log_project.settings(), "api", 10)
    assert result.lines == ["starting", "fatal: cannot connect"]
    assert result.state == "exited"
    assert any("stopped" in n and "exit code 3" in n for n in result.notes)


@pytest.mark.docker
def test_container_that_never_logged(log_project: LogProject) -> None:
    log_project.add("api", "sleep 600")
    result = fetch_logs(log_project.settings(), "api", 10)
    assert result.empty and result.text == "" and result.lines_fetched == 0
    assert any("has written nothing to its log" in n for n in result.notes)


@pytest.mark.docker
def test_long_line_is_cut_after_redaction(log_project: LogProject) -> None:
    canary = log_project.canaries.secret_key
    # The secret straddles the cut: redaction must see it whole, before the line is shortened.
    prefix = "a" * (MAX_LINE_CHARS - 5)
    api = log_project.add(
        "api",
        f"printf '%s%s%s\\n' {prefix} {canary} $(printf 'b%.0s' $(seq 1 2000)); echo done"
        "; sleep 600",
    )
    log_project.wait_for_line(api, b"done")
    result = fetch_logs(log_project.settings(), "api", 5)
    first = result.lines[0]
    assert first.startswith(prefix) and first.endswith("[line cut]") and result.truncated
    assert canary[:5] not in first[len(prefix) :]
    assert len(first) <= MAX_LINE_CHARS + 20


@pytest.mark.docker
def test_tty_container_lines_are_clean(log_project: LogProject) -> None:
    api = log_project.add(
        "api", r"printf 'one\r\ntwo \033[33mthree\033[0m\r\n'; sleep 600", tty=True
    )
    log_project.wait_for_line(api, b"three")
    assert fetch_logs(log_project.settings(), "api", 10).lines == ["one", "two three"]


@pytest.mark.docker
def test_unreadable_env_still_redacts_the_container_environment(canary_api: LogProject) -> None:
    (canary_api.dir / ".env").unlink()
    result = fetch_logs(canary_api.settings(), "api", 100)
    assert_no_canary(result.text, canary_api.canaries)
    assert any("could not read Dify's .env" in n for n in result.notes)


@pytest.mark.docker
def test_slow_read_is_cut_by_the_watchdog(log_project: LogProject) -> None:
    # A TTY container's log is read byte by byte (docker-py): 5000 lines take ~0.25 s, more than
    # the watchdog's 0.1 s floor. What was read is kept; the result says it was cut.
    api = log_project.add(
        "api",
        "i=0; while [ $i -lt 8000 ]; do echo line $i padding the line a bit; i=$((i+1)); done"
        "; echo done; sleep 600",
        tty=True,
    )
    log_project.wait_for_line(api, b"done", timeout=60)
    result = fetch_logs(log_project.settings(), "api", 5000, deadline=0.01)
    assert result.truncated and any("stopped reading" in n for n in result.notes)
    assert result.lines_returned < 5000


@pytest.mark.docker
def test_logging_driver_without_read_back(log_project: LogProject) -> None:
    log_project.add("api", "echo hi; sleep 600", log_driver="none")
    with pytest.raises(HandlerError, match=r"driver 'none'.*json-file"):
        fetch_logs(log_project.settings(), "api", 10)


@pytest.mark.docker
def test_engine_down_is_explained(tmp_path: Path) -> None:
    settings = Settings(
        docker_host=f"unix://{tmp_path}/no-docker.sock",
        dify_compose_project="x",
    )
    with pytest.raises(HandlerError) as caught:
        fetch_logs(settings, "api", 10)
    assert "does not exist" in str(caught.value) and "DOCKER_HOST" in str(caught.value)


# --- arguments (no engine) -------------------------------------------------------------------
@pytest.mark.parametrize("lines", [0, -1, 5001, "abc", "1e3", "", True])
def test_absurd_line_counts_are_refused_before_any_io(lines: Any) -> None:
    settings = Settings(docker_host="unix:///nonexistent.sock")
    with pytest.raises(LogsUsageError, match="LINES"):
        fetch_logs(settings, "api", lines)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ("api", 50, None, None)),
        (("100",), ("api", 100, None, None)),
        (("worker",), ("worker", 50, None, None)),
        (("worker", "200"), ("worker", 200, None, None)),
        (("api", "5", "--since", "10m", "--grep", "Time Out"), ("api", 5, "10m", "Time Out")),
        (("--since=2h", "--grep=x", "plugin_daemon"), ("plugin_daemon", 50, "2h", "x")),
    ],
)
def test_parse_request(args: tuple[str, ...], expected: tuple[Any, ...]) -> None:
    request = parse_request(args)
    since = request.since.text if request.since else None
    assert (request.service, request.lines, since, request.grep) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("api", "0"), "LINES"),
        (("api", "-1"), "LINES"),
        (("api", "5001"), "LINES"),
        (("api", "abc"), "LINES"),
        (("-1",), "LINES"),
        (("api", "10", "extra"), "too many"),
        (("--since",), "needs a value"),
        (("--since", "yesterday"), "--since"),
        (("--since", "0m"), "positive"),
        (("--grep", " "), "--grep"),
        (("--follow",), "unknown option"),
        (("a;rm -rf /",), "SERVICE"),
    ],
)
def test_parse_request_refuses(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(LogsUsageError, match=message):
        parse_request(args)


def test_parse_since_forms() -> None:
    assert parse_since("10m").seconds == 600
    assert parse_since("1h30m").seconds == 5400
    assert parse_since("1d").seconds == 86400
    assert parse_since("30s").seconds == 30
    assert parse_since("2025-01-31T14:00:00Z").epoch() == 1738332000
    naive = parse_since("2025-01-31T14:00:00")
    assert naive.at is not None and naive.at.tzinfo is not None
    assert parse_since("10m").epoch(now=1_000_000.0) == 999_400.0
