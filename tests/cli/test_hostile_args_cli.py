"""Arguments that used to escape as exceptions (issue 11): each is now one line on stderr, exit
code 2, and nothing is touched. Real subprocesses; the engine is a missing socket, so nothing
could have run anyway, and the state folder must still be untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rig.cli_process import run_cli

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
DIGITS = "9" * 5000


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("logs", "--since", "99999999999d"), "--since"),  # was OverflowError (timedelta)
        (("logs", "--since", DIGITS + "d"), "--since"),
        (("logs", "--since", "0001-01-01"), "--since"),  # was OverflowError (astimezone)
        (("logs", "--since", "1969-07-20T20:17:00Z"), "before 1970"),
        (("logs", "api", DIGITS), "LINES"),  # was ValueError (int of 5000 digits)
        (("logs", DIGITS), "LINES"),
        (("logs", "api", "-" + DIGITS), "LINES"),
        (("restart", "--wait", "nan"), "--wait"),  # was accepted: a wait that never ends
        (("restart", "--wait", "NaN"), "--wait"),
        (("restart", "--wait", "inf"), "--wait"),
        (("restart", "--wait", "-0"), "--wait"),
        (("restart", "--wait", "1e309"), "--wait"),
        (("restart", "--wait", DIGITS), "--wait"),
        (("restart", "--wait", "ten"), "--wait"),
    ],
)
def test_hostile_arguments_are_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    state = tmp_path / "state"
    proc = run_cli(*args, env={**NO_ENGINE, "STATE_DIR": str(state)})
    assert proc.returncode == 2, proc.stderr[-500:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-500:]
    assert lines[0].startswith("dify-ollama ") and needle in lines[0]
    assert len(lines[0]) < 300  # the 5000 digits are not echoed back
    assert proc.stdout == ""
    assert not state.exists() or not any(state.rglob("*"))
