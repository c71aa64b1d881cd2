"""The `dify-ollama` entry point as a user runs it: `python -m cli.main` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT):
    return run_python("-m", "cli.main", *args, env=env, cwd=cwd)


def run_python(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT):
    """`python ARGS` with the project importable, in the same hermetic environment."""
    # Hermetic: none of the caller's settings for the bot leak into the process under test.
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DIFY_", "OLLAMA_", "CHECK_", "SLACK_", "BOT_"))
    }
    full["PYTHONPATH"] = str(ROOT)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
        check=False,
        cwd=cwd,
    )
