"""Line-level .env edits and the durable write underneath them (no Docker engine needed)."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handlers import backup, env_edit
from handlers.envfile import parse_env_text
from handlers.redact import MASK, redactor_for
from handlers.results import HandlerError
from tests.rig.read_only import read_only
from tests.rig.stack import REFERENCE_DIR

NEW = "http://host.docker.internal:11434/v1"


def _changed_lines(old: str, new: str) -> list[tuple[str, str]]:
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    assert len(a) == len(b)
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


def test_real_env_example_changes_one_line_only() -> None:
    text = (REFERENCE_DIR / ".env.example").read_text()
    new, edits = env_edit.set_values(text, {"OPENAI_API_BASE": NEW})
    assert _changed_lines(text, new) == [
        ("OPENAI_API_BASE=https://api.openai.com/v1\n", f"OPENAI_API_BASE={NEW}\n")
    ]
    assert len(edits) == 1 and edits[0].index is not None
    before, after = parse_env_text(text).values, parse_env_text(new).values
    assert after.pop("OPENAI_API_BASE") == NEW
    before.pop("OPENAI_API_BASE")
    assert before == after  # all ~700 other keys read the same


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("OPENAI_API_BASE=http://127.0.0.1:11434/v1", f"OPENAI_API_BASE={NEW}"),
        ("export OPENAI_API_BASE=http://x", f"export OPENAI_API_BASE={NEW}"),
        ("  OPENAI_API_BASE = http://x  # keep me", f"  OPENAI_API_BASE = {NEW}  # keep me"),
        ('OPENAI_API_BASE="http://x" # quoted', f'OPENAI_API_BASE="{NEW}" # quoted'),
        ("OPENAI_API_BASE='http://x'", f"OPENAI_API_BASE='{NEW}'"),
        ("OPENAI_API_BASE=", f"OPENAI_API_BASE={NEW}"),
        ("OPENAI_API_BASE=http://x\t#tab comment", f"OPENAI_API_BASE={NEW}\t#tab comment"),
    ],
)
def test_only_the_value_changes(line: str, expected: str) -> None:
    text = f"# head\nA=1\n{line}\nB=2 # tail\n"
    new, _ = env_edit.set_values(text, {"OPENAI_API_BASE": NEW})
    assert new == f"# head\nA=1\n{expected}\nB=2 # tail\n"
    assert parse_env_text(new).values["OPENAI_API_BASE"] == NEW


def test_crlf_endings_and_last_assignment_wins() -> None:
    text = "OPENAI_API_BASE=http://a\r\nX=1\r\nOPENAI_API_BASE=http://127.0.0.1:11434\r\n"
    new, _ = env_edit.set_values(text, {"OPENAI_API_BASE": NEW})
    assert new == f"OPENAI_API_BASE=http://a\r\nX=1\r\nOPENAI_API_BASE={NEW}\r\n"


def test_missing_key_is_appended_and_unterminated_last_line_kept() -> None:
    new, edits = env_edit.set_values("A=1\nB=2", {"OPENAI_API_BASE": NEW})
    assert new == f"A=1\nB=2\nOPENAI_API_BASE={NEW}\n"
    assert edits[0].index is None


def test_same_value_is_no_edit() -> None:
    text = f"OPENAI_API_BASE={NEW}\n"
    assert env_edit.set_values(text, {"OPENAI_API_BASE": NEW}) == (text, [])


@pytest.mark.parametrize(
    "value",
    [
        "http://a\nINJECTED=1",
        "http://a\r",
        'http://"a"',
        "http://'a'",
        "http://$HOME",
        "http://a\\b",
        "http://a #comment",
        " http://a",
    ],
)
def test_dangerous_values_are_refused_without_echo(value: str) -> None:
    with pytest.raises(HandlerError) as err:
        env_edit.set_values("OPENAI_API_BASE=x\n", {"OPENAI_API_BASE": value})
    assert "refusing to write OPENAI_API_BASE" in str(err.value)
    assert value.strip() not in str(err.value)


def test_multiline_quoted_value_is_refused() -> None:
    text = 'OPENAI_API_BASE="http://a\nstill the value"\nB=1\n'
    with pytest.raises(HandlerError, match="spanning several lines"):
        env_edit.set_values(text, {"OPENAI_API_BASE": NEW})


def test_masked_diff_hides_secret_keys_known_values_and_url_passwords() -> None:
    old = (
        "SECRET_KEY=sk-verysecret1\nDB_PASSWORD=hunter22hunter\n"
        "CELERY_BROKER_URL=redis://:hunter22hunter@redis:6379/1\n"
        "OPENAI_API_BASE=http://user:pw@127.0.0.1:11434/v1\n"
    )
    new, _ = env_edit.set_values(old, {"OPENAI_API_BASE": NEW})
    redactor = redactor_for(env_values=parse_env_text(old).values)
    diff = env_edit.masked_diff(old, new, ".env", redactor, context=5)
    for secret in ("sk-verysecret1", "hunter22hunter", "user:pw"):
        assert secret not in diff
    assert f"+OPENAI_API_BASE={NEW}" in diff
    assert f"SECRET_KEY={MASK}" in diff and f"redis://{MASK}@redis" in diff


# --- the durable write ------------------------------------------------------------------------
def test_write_keeps_mode_owner_and_symlink(tmp_path: Path) -> None:
    real_dir = tmp_path / "secrets"
    real_dir.mkdir()
    target = real_dir / "dify.env"
    target.write_text("OPENAI_API_BASE=http://127.0.0.1:11434/v1\nX=1\n")
    target.chmod(0o640)
    if os.geteuid() == 0:
        os.chown(target, 1234, 2345)
    link = tmp_path / ".env"
    link.symlink_to(target)
    before = os.stat(target)
    new, _ = env_edit.set_values(link.read_text(), {"OPENAI_API_BASE": NEW})
    written = env_edit.write_text(link, new, backup.sha256(link.read_bytes()))
    assert written == target.resolve()
    assert link.is_symlink() and os.readlink(link) == str(target)
    after = os.stat(target)
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino  # replaced by rename, not rewritten in place
    assert target.read_text() == f"OPENAI_API_BASE={NEW}\nX=1\n"
    assert [p.name for p in real_dir.iterdir()] == ["dify.env"]  # no temp file left


def test_write_refuses_a_file_changed_since_the_plan(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("OPENAI_API_BASE=http://127.0.0.1\n")
    planned = backup.sha256(env.read_bytes())
    env.write_text("OPENAI_API_BASE=http://127.0.0.1\nSOMEONE=else\n")
    with pytest.raises(HandlerError, match="changed since the plan"):
        env_edit.write_text(env, f"OPENAI_API_BASE={NEW}\n", planned)
    assert env.read_text().endswith("SOMEONE=else\n")


def test_read_only_folder_leaves_the_file_and_says_why(tmp_path: Path) -> None:
    folder = tmp_path / "dify"
    folder.mkdir()
    env = folder / ".env"
    env.write_text("OPENAI_API_BASE=http://127.0.0.1\n")
    with read_only(folder), pytest.raises(HandlerError) as err:
        env_edit.write_text(env, f"OPENAI_API_BASE={NEW}\n", backup.sha256(env.read_bytes()))
    assert "was not changed" in str(err.value)
    assert "read-only" in str(err.value) or "permission denied" in str(err.value)
    assert env.read_text() == "OPENAI_API_BASE=http://127.0.0.1\n"
    assert [p.name for p in folder.iterdir()] == [".env"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a file owned by someone else")
def test_owner_that_cannot_be_kept_refuses_the_write(tmp_path: Path) -> None:
    """The writer may not give the new file the old owner (not root, or root without
    CAP_CHOWN): refuse, leave the file alone. The child keeps root's uid but loses CAP_CHOWN,
    so it can still read this checkout and its venv wherever they are (under a private 0700
    folder an unprivileged uid could not even import the code under test)."""
    folder = tmp_path / "dify"
    folder.mkdir()
    env = folder / ".env"
    env.write_text("OPENAI_API_BASE=http://127.0.0.1\n")
    env.chmod(0o666)
    os.chown(env, 1234, 1234)
    code = (
        "import sys; from pathlib import Path; from handlers import backup\n"
        "p = Path(sys.argv[1])\n"
        "try:\n"
        "    backup.atomic_write(p, b'NEW=1\\n')\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e); sys.exit(3)\n"
    )
    done = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-chown",
            "--inh-caps=-chown",
            sys.executable,
            "-c",
            code,
            str(env),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=30,
        check=False,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "HandlerError" in done.stdout and "cannot keep that owner" in done.stdout
    assert env.read_text() == "OPENAI_API_BASE=http://127.0.0.1\n"
    assert os.stat(env).st_uid == 1234
    assert [p.name for p in folder.iterdir()] == [".env"]


def test_a_writer_killed_at_random_points_leaves_old_or_new_never_partial(tmp_path: Path) -> None:
    """SIGKILL a process in the middle of atomic writes of a large .env, again and again."""
    env = tmp_path / ".env"
    old = "".join(f"KEY_{i}=old-value-{i}\n" for i in range(40_000))  # ~1 MB
    new = "".join(f"KEY_{i}=new-value-{i}\n" for i in range(40_000))
    env.write_text(old)
    code = (
        "import sys; from pathlib import Path; from handlers import backup\n"
        "p = Path(sys.argv[1]); data = Path(sys.argv[2]).read_bytes()\n"
        "print('ready', flush=True)\n"
        "backup.atomic_write(p, data)\n"
    )
    source = tmp_path / "new.txt"
    source.write_text(new)
    rng = random.Random(5)
    seen = set()
    for _ in range(12):
        env.write_text(old)
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(env), str(source)],
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0, 0.02))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        content = env.read_text()
        assert content in (old, new)
        seen.add(content == new)
        for leftover in tmp_path.glob(".env.*.tmp"):
            leftover.unlink()  # what a killed writer leaves: a temp file, never a partial .env
    assert seen  # at least one outcome observed (both, usually)


def test_backup_folder_and_copies_are_private(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("SECRET_KEY=abc\n")
    env.chmod(0o644)
    made = backup.create_backup(
        tmp_path / "backups",
        project="p",
        dify_dir=tmp_path,
        user="u",
        operation="fix-env",
        files=[("env", env), ("override", tmp_path / "missing.yaml")],
        rows=[{"table": "t", "id": "1", "config": "{}"}],
    )
    assert stat.S_IMODE(os.stat(tmp_path / "backups").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(made.dir).st_mode) == 0o700
    for item in made.dir.iterdir():
        assert stat.S_IMODE(os.stat(item).st_mode) == 0o600, item
    loaded = backup.load_backup(made.dir)
    saved_env = loaded.file("env")
    assert saved_env is not None and loaded.saved_bytes(saved_env) == b"SECRET_KEY=abc\n"
    assert saved_env.mode == 0o644
    missing = loaded.file("override")
    assert missing is not None and not missing.existed
    assert loaded.rows == [{"table": "t", "id": "1", "config": "{}"}]
    assert backup.latest_undoable(tmp_path / "backups", tmp_path) is not None
