"""scripts/dify-ollama-ssh-command, the forced command of the bot's key on a Dify host: it
runs `dify-ollama SUBCOMMAND ... --json` (argv, no shell) and refuses everything else. Here it
runs as sshd runs it (SSH_ORIGINAL_COMMAND in the environment), with a real executable in the
CLI's place that records the argv and environment it was given; tests/hosts runs it behind a
real sshd."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "dify-ollama-ssh-command"


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    """An executable that writes its argv and two environment variables as JSON."""
    path = tmp_path / "dify-ollama"
    path.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'dify_dir': os.environ.get('DIFY_DIR'),"
        " 'original': os.environ.get('SSH_ORIGINAL_COMMAND')}))\n"
    )
    path.chmod(0o755)
    return path


def forced(command: str | None, cli: Path | str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    if command is not None:
        env["SSH_ORIGINAL_COMMAND"] = command
    return subprocess.run(
        [str(SCRIPT), str(cli)], capture_output=True, text=True, env=env, timeout=30, check=False
    )


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("dify-ollama check --json", ["check", "--json"]),
        ("dify-ollama logs api 200 --json", ["logs", "api", "200", "--json"]),
        ("dify-ollama fix-env --apply abc123 --json", ["fix-env", "--apply", "abc123", "--json"]),
        ("dify-ollama restart 'api' worker --json", ["restart", "api", "worker", "--json"]),
        # quoted words stay one word; what would be shell syntax is just text for the CLI
        (
            "dify-ollama logs api --grep='a;b $(id)' --json",
            ["logs", "api", "--grep=a;b $(id)", "--json"],
        ),
        # every option the bot sends, with values of their shape
        (
            "dify-ollama check --only ollama.host,dify.chat --chat --json",
            ["check", "--only", "ollama.host,dify.chat", "--chat", "--json"],
        ),
        ("dify-ollama check --only=ollama.host --json", ["check", "--only=ollama.host", "--json"]),
        (
            "dify-ollama logs api 20 --since=10m --grep=-x --json",
            ["logs", "api", "20", "--since=10m", "--grep=-x", "--json"],
        ),
        (
            "dify-ollama logs --since '2026-01-01 10:00' --json",
            ["logs", "--since", "2026-01-01 10:00", "--json"],
        ),
        ("dify-ollama fix-env --undo --json", ["fix-env", "--undo", "--json"]),
        (
            "dify-ollama fix-env --undo 20260101T1000 --json",
            ["fix-env", "--undo", "20260101T1000", "--json"],
        ),
        (
            "dify-ollama restart --all --yes-really --wait=30 --no-check --json",
            ["restart", "--all", "--yes-really", "--wait=30", "--no-check", "--json"],
        ),
        (
            "dify-ollama restart api --wait 2.5 --json",
            ["restart", "api", "--wait", "2.5", "--json"],
        ),
        ("dify-ollama history --since 7d --json", ["history", "--since", "7d", "--json"]),
    ],
)
def test_the_cli_shapes_run_with_exactly_those_words(
    recorder: Path, command: str, argv: list[str]
) -> None:
    done = forced(command, recorder)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["argv"] == argv
    assert seen["original"] is None  # not handed on to the CLI


def test_allowed_settings_go_into_the_environment(recorder: Path) -> None:
    done = forced("DIFY_DIR=/srv/dify/docker dify-ollama check --json", recorder)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "argv": ["check", "--json"],
        "dify_dir": "/srv/dify/docker",
        "original": None,
    }


@pytest.mark.parametrize(
    ("command", "why"),
    [
        (None, "no command"),
        ("", "no command"),
        ("sh -c id", "only `dify-ollama SUBCOMMAND ... --json`"),
        ("/bin/sh", "only `dify-ollama"),
        ("rm -rf / --json", "only `dify-ollama"),
        ("dify-ollama serve --json", "subcommand 'serve' is not allowed"),
        ("dify-ollama check", "must end with --json"),
        ("dify-ollama check --json; id", "must end with --json"),
        ("dify-ollama check --host all --json", "--host is not allowed"),
        ("LD_PRELOAD=/tmp/x.so dify-ollama check --json", "setting 'LD_PRELOAD'"),
        ("PATH=/tmp dify-ollama check --json", "setting 'PATH'"),
        ("DIFY_DIR='/a b' dify-ollama check --json", "setting 'DIFY_DIR'"),
        ("dify-ollama check 'unclosed --json", "cannot split"),
        ("dify-ollama logs '\x07' --json", "control characters"),
        ("dify-ollama " + "x " * 3000 + "--json", "longer than"),
        # only the flags the bot sends, each with a value of its shape
        ("dify-ollama fix-env --yes --json", "option '--yes' is not allowed with fix-env"),
        ("dify-ollama fix-env -y --json", "option '-y' is not allowed"),
        ("dify-ollama fix-env --undo --force --json", "option '--force' is not allowed"),
        ("dify-ollama fix-env --restart --json", "option '--restart' is not allowed"),
        ("dify-ollama fix-env --apply --json", "--apply needs a value"),
        ("dify-ollama fix-env --apply -x --json", "--apply: value '-x' is not allowed"),
        ("dify-ollama history --png /tmp/x.png --json", "option '--png' is not allowed"),
        ("dify-ollama check --chat=1 --json", "option '--chat' is not allowed"),
        ("dify-ollama check api --json", "check takes at most 0 names"),
        ("dify-ollama check --only 'A;B' --json", "--only: value 'A;B' is not allowed"),
        ("dify-ollama check --lang zh-CN --json", "option '--lang' is not allowed"),
        ("dify-ollama restart --wait=nan --json", "--wait: value 'nan' is not allowed"),
        ("dify-ollama restart --wait 1e309 --json", "--wait: value '1e309' is not allowed"),
        ("dify-ollama restart --wait=-5 --json", "--wait: value '-5' is not allowed"),
        ("dify-ollama restart --wait --json", "--wait needs a value"),
        ("dify-ollama restart --all=yes --json", "option '--all' is not allowed"),
        ("dify-ollama restart 'a b' --json", "argument 'a b' is not a name"),
        ("dify-ollama logs '$(id)' --json", "argument '$(id)' is not a name"),
        ("dify-ollama logs api 20 extra --json", "logs takes at most 2 names"),
        ("dify-ollama logs --grep -x --json", "--grep takes its value as --grep=VALUE"),
        ("dify-ollama logs -g x --json", "option '-g' is not allowed"),
        ("dify-ollama logs --since=-1d --json", "--since: value '-1d' is not allowed"),
    ],
)
def test_everything_else_is_refused_without_running_anything(
    recorder: Path, tmp_path: Path, command: str | None, why: str
) -> None:
    done = forced(command, recorder)
    assert done.returncode == 126
    assert done.stdout == ""  # the recorder never ran
    assert "refused" in done.stderr and why in done.stderr


def test_a_missing_cli_is_exit_127_with_its_path(tmp_path: Path) -> None:
    done = forced("dify-ollama check --json", tmp_path / "absent")
    assert done.returncode == 127
    assert f"not found at {tmp_path / 'absent'}" in done.stderr


def test_the_real_cli_answers_json_through_it(tmp_path: Path) -> None:
    cli = ROOT / ".venv" / "bin" / "dify-ollama"
    done = forced("dify-ollama check --only nonexistent.id --json", cli)
    assert done.returncode == 2  # the CLI's own argument check ran, after the forced command
    assert "unknown finding id" in done.stderr
    assert os.access(SCRIPT, os.X_OK)
