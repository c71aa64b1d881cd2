"""deploy/dify-ollama-bot.service as systemd itself reads it: `systemd-analyze verify` (syntax,
directives, the executable) and `systemd-analyze security --offline` (the hardening)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "dify-ollama-bot.service"
INSTALLED_AT = "/opt/dify-ollama-bot/bin/dify-ollama"


def analyzer() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail(
            "systemd-analyze is missing: scripts/install-test-deps installs it (Debian's "
            "`systemd` package); the unit is not verified without it"
        )
    return found


def local_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart at this checkout's `dify-ollama` (verify checks that the file
    exists and is executable; the unit's own path is where the README installs it)."""
    text = UNIT.read_text() if text is None else text
    here = ROOT / ".venv" / "bin" / "dify-ollama"
    assert here.is_file(), "scripts/install-test-deps makes .venv/bin/dify-ollama"
    assert text.count(f"ExecStart={INSTALLED_AT} ") == 1
    path = tmp_path / UNIT.name
    path.write_text(text.replace(f"ExecStart={INSTALLED_AT} ", f"ExecStart={here} "))
    return path


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [analyzer(), "verify", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def test_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    done = verify(local_copy(tmp_path))
    # verify exits 0 on unknown keys and bad values too: only silence is a pass
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stderr


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a typo in a directive is reported."""
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictt")
    done = verify(local_copy(tmp_path, broken))
    assert "strictt" in done.stderr


def test_unit_hardening(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for directive in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "SupplementaryGroups=docker",
        "StateDirectory=dify-ollama-bot",
        "Environment=STATE_DIR=/var/lib/dify-ollama-bot",
        "RestartPreventExitStatus=2",
    ):
        assert re.search(rf"^{re.escape(directive)}$", text, re.M), directive
    assert re.search(r"^ReadWritePaths=/\S+", text, re.M)
    done = subprocess.run(
        [analyzer(), "security", "--offline=yes", "--no-pager", str(local_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert level is not None, done.stdout[-2000:] + done.stderr
    print(f"\nsystemd-analyze security exposure: {level.group(1)} (0 best, 10 worst)")
    assert float(level.group(1)) <= 2.5
