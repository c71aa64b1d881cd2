"""The audit trail: every argument redacted with the host's whole secret set before it is
written or echoed, and echoes to AUDIT_CHANNEL on their own bounded queue (never dropped
silently, never behind a busy executor)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.audit import EchoQueue
from handlers.redact import MASK
from tests.rig.log_containers import Canaries, LogProject, printf_script
from tests.rig.scenes import dify_folder

AUDIT = "CAUDIT"


def echoes(bot: Any) -> list[str]:
    posts = bot.slack.of("chat.postMessage")
    return [c.params["text"] for c in posts if c.params["channel"] == AUDIT]


def wait_echo(bot: Any, needle: str, timeout: float = 10.0) -> str:
    found = bot.slack.wait_for(
        "chat.postMessage",
        where=lambda c: c.params.get("channel") == AUDIT and needle in c.params.get("text", ""),
        timeout=timeout,
    )
    return str(found[0].params["text"])


def test_a_password_typed_into_grep_is_redacted_in_the_audit_file_and_channel(
    run_bot: Any, tmp_path: Path
) -> None:
    """Dify's .env secrets, and the bot's own tokens, whatever command they are typed into;
    a password rotated in .env a moment ago is masked at once."""
    first, rotated = "Zq81xT0pWdbPass", "Rot4ted-Later-5e2b"
    folder = dify_folder(tmp_path, {"DB_PASSWORD": first})
    bot = run_bot(audit_channel=AUDIT, dify_dir=folder)
    bot.command(f"logs api --grep {first}")
    bot.command(f"frobnicate {first}")  # unknown: audited in the ack path
    wait_echo(bot, "frobnicate")
    env = folder / ".env"
    env.write_text(env.read_text().replace(f"DB_PASSWORD={first}", f"DB_PASSWORD={rotated}"))
    bot.command(f"logs api --grep {rotated}")
    bot.command(f"check {bot.settings.slack_signing_secret.get_secret_value()}")
    wait_echo(bot, "check")
    lines = bot.wait_audit(4)
    audit_text = bot.settings.audit_path.read_text()
    channel_text = " ".join(echoes(bot))
    for secret in (first, rotated, bot.settings.slack_signing_secret.get_secret_value()):
        assert secret not in audit_text and secret not in channel_text, secret
    assert sum(MASK in " ".join(line["args"]) for line in lines) == 4
    assert bot.bot.runtime.secrets.builds >= 2  # rebuilt when .env changed


def test_audit_echoes_get_through_while_the_executor_is_full(run_bot: Any) -> None:
    """Every worker slot taken: commands are refused as busy, and their audit lines still
    reach AUDIT_CHANNEL (they have their own queue and thread)."""
    bot = run_bot(audit_channel=AUDIT, worker_threads=1)
    runtime = bot.bot.runtime
    release = threading.Event()
    taken = 0
    while runtime.executor.submit(release.wait, 30) is not None:
        taken += 1
    try:
        answer = bot.command("check").json()
        assert "busy" in answer["text"]
        assert "busy" in wait_echo(bot, "check")
    finally:
        release.set()
    assert taken == runtime.executor.max_pending


def test_a_full_echo_queue_drops_lines_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    posted: list[dict[str, Any]] = []
    gate = threading.Event()

    def post(line: dict[str, Any]) -> None:
        gate.wait(10)
        posted.append(line)

    queue = EchoQueue(post, size=2)
    caplog.set_level(logging.WARNING)
    accepted = [queue.submit({"n": i}) for i in range(6)]
    # one line may already be in the poster's hands; the queue holds two more
    assert accepted[:2] == [True, True] and accepted.count(False) >= 3
    assert queue.dropped == accepted.count(False)
    assert "not echoed so far" in caplog.text and "audit file has them all" in caplog.text
    gate.set()
    queue.close()
    assert len(posted) == accepted.count(True)


@pytest.fixture
def log_project(docker_engine: Any, tmp_path: Path) -> Iterator[LogProject]:
    project = LogProject(docker_engine, tmp_path, Canaries())
    try:
        yield project
    finally:
        project.cleanup()


@pytest.mark.docker
def test_a_secret_only_in_a_containers_environment_is_redacted_too(
    run_bot: Any, log_project: LogProject
) -> None:
    log_project.add("api", printf_script(["ready"]))
    canary = log_project.canaries.container_only  # in no file: only in the container's env
    settings = log_project.settings()
    bot = run_bot(
        audit_channel=AUDIT,
        dify_dir=settings.dify_dir,
        dify_compose_project=settings.dify_compose_project,
        docker_host=settings.docker_host,
    )
    deadline = time.monotonic() + 15
    while bot.bot.runtime.secrets.builds < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    bot.command(f"logs api --grep {canary}")
    wait_echo(bot, "logs")
    assert canary not in bot.settings.audit_path.read_text()
    assert canary not in " ".join(echoes(bot))
    assert MASK in bot.wait_audit(1)[0]["args"][-1]
