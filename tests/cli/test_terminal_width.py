"""The CLI in an 80-column terminal: help, reports and plans wrap to the width (COLUMNS or the
terminal's), words are never cut, and NO_COLOR turns colour off even on a real terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

from cli.main import command_modules
from cli.output import fit
from handlers.report_text import render_text
from handlers.results import Finding, Report, Status
from tests.rig.cli_process import ROOT, run_cli

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock", "OLLAMA_URL": "http://127.0.0.1:9"}


def too_wide(text: str, columns: int) -> list[str]:
    """Lines wider than `columns` that could have been wrapped (more than one word)."""
    return [line for line in text.splitlines() if len(line) > columns and " " in line.strip()]


@pytest.mark.parametrize("columns", [80, 60])
def test_help_fits(columns: int) -> None:
    names = [m.rsplit(".", 1)[1].replace("_", "-") for m in command_modules()]
    for argv in ([], *([name] for name in names)):
        done = run_cli(*argv, "--help", env={"COLUMNS": str(columns)})
        assert done.returncode == 0, done.stderr
        assert too_wide(done.stdout, columns) == [], (argv, done.stdout)


@pytest.mark.parametrize("columns", [80, 60])
def test_check_report_fits(columns: int) -> None:
    done = run_cli("check", env={**NO_ENGINE, "COLUMNS": str(columns), "CHECK_TIMEOUT": "2"})
    assert done.returncode == 1, done.stderr
    assert "FAIL" in done.stdout and "docker.engine" in done.stdout
    assert too_wide(done.stdout, columns) == [], done.stdout


def test_wrapping_keeps_words_and_paths_whole() -> None:
    url = "http://host.docker.internal:11434/v1/" + "x" * 60
    report = Report(
        (
            Finding("docker.engine", Status.OK, "Docker answers " * 8),
            Finding("dify.base_url", Status.FAIL, "base URL wrong", f"saw {url} here", "fix it"),
        ),
        12,
        {"host": "h", "dify_dir": "/opt/" + "d" * 70},
    )
    text = render_text(report, width=60)
    assert url in text and "/opt/" + "d" * 70 in text
    assert too_wide(text, 60) == [], text
    # the default (Slack's full-report attachment) is unchanged: 100 columns
    assert max(len(line) for line in render_text(report).splitlines()) > 60
    block = fit("  a plan line " + "word " * 30 + "\n  short", 40)
    assert all(len(line) <= 40 for line in block.splitlines())
    assert block.splitlines()[1].startswith("    word")  # continues at its indent + 2
    # a `command` is never split across lines: it must stay copyable
    command = "`sudo systemctl restart ollama --now`"
    for columns in range(50, 90):  # wherever the command fits on a line
        assert command in fit("  remedy: run " + "x " * 12 + command + " then check", columns)


def run_in_terminal(env: dict[str, str]) -> str:
    """`dify-ollama check` with stdout on a real pseudo-terminal; what the terminal shows."""
    primary, secondary = pty.openpty()
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DIFY_", "OLLAMA_"))}
    full.update(PYTHONPATH=str(ROOT), CHECK_TIMEOUT="2", **NO_ENGINE, **env)
    if "NO_COLOR" not in env:
        full.pop("NO_COLOR", None)  # the caller's own NO_COLOR must not decide this test
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "check"],
        stdout=secondary,
        stderr=subprocess.DEVNULL,
        env=full,
        cwd=ROOT,
    )
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        proc.wait(timeout=30)
        os.close(primary)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_unless_no_color() -> None:
    coloured = run_in_terminal({})
    assert "FAIL" in coloured and "\x1b[31m" in coloured
    plain = run_in_terminal({"NO_COLOR": "1"})
    assert "FAIL" in plain and "\x1b[" not in plain
