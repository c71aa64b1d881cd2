"""The host's secret set never forgets a secret while the process runs: a password rotated out
of `.env` is still in older log lines, and in a command typed before the rotation but audited
after it (a slow worker under load did exactly that: the audit file got the old password)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bot.audit import Auditor
from config.settings import Settings
from handlers import secret_set
from handlers.redact import MASK
from handlers.secret_set import HostSecrets
from tests.rig.scenes import dify_folder

OLD, NEW = "Zq81xT0pWdbPass", "Rot4ted-Later-5e2b"


def host_secrets(folder: Path) -> HostSecrets:
    settings = Settings(dify_dir=folder, docker_host="unix:///nonexistent/docker.sock")
    # The containers' part as an engine with no containers would give it.
    return HostSecrets(settings, gather=lambda s: (folder / ".env", set())).start()


def rotate(folder: Path, old: str, new: str) -> None:
    env = folder / ".env"
    env.write_text(env.read_text().replace(f"DB_PASSWORD={old}", f"DB_PASSWORD={new}"))


def test_a_rotated_password_stays_masked_next_to_the_new_one(tmp_path: Path) -> None:
    folder = dify_folder(tmp_path, {"DB_PASSWORD": OLD})
    secrets = host_secrets(folder)
    assert secrets.redact(f"password {OLD}") == f"password {MASK}"
    rotate(folder, OLD, NEW)
    # Bare values (no URL or key around them, which other passes would catch anyway).
    assert secrets.redact(f"retried with {OLD}, then {NEW}") == f"retried with {MASK}, then {MASK}"


def test_a_command_typed_before_the_rotation_and_audited_after_it_is_masked(
    tmp_path: Path,
) -> None:
    folder = dify_folder(tmp_path, {"DB_PASSWORD": OLD})
    secrets = host_secrets(folder)
    auditor = Auditor(tmp_path / "audit.jsonl", redact=secrets.redact)
    secrets.redactor()  # the bot has been serving: the set was built from the old .env
    rotate(folder, OLD, NEW)
    auditor.write(command="logs", args=["api", "--grep", OLD])
    written = (tmp_path / "audit.jsonl").read_text()
    assert OLD not in written and MASK in written


def test_retired_secrets_are_bounded_oldest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secret_set, "RETIRED_MAX", 2)
    # Lengths differ, so each rewrite changes the file's size (its stamp), whatever the
    # file system's time granularity.
    passwords = ["Pw-x7Kq2mZr9" + "a" * i for i in range(5)]
    folder = dify_folder(tmp_path, {"DB_PASSWORD": passwords[0]})
    secrets = host_secrets(folder)
    secrets.redactor()
    for old, new in itertools.pairwise(passwords):
        rotate(folder, old, new)
        secrets.redactor()
    masked = {p for p in passwords if secrets.redact(p) == MASK}
    # The current one, and the two most recently retired; the two oldest were let go.
    assert masked == set(passwords[2:])
