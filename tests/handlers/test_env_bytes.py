"""`.env` bytes that are not UTF-8 (issue 11): reading never raises, a finding names the line,
and an edit of another line writes those bytes back exactly (surrogateescape)."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers import backup, env_edit
from handlers.check import run_check
from handlers.compose_file import load_compose
from handlers.envfile import (
    decode_for_editing,
    encode_for_writing,
    parse_env_bytes,
    read_env_file,
    undecodable_lines,
)
from handlers.results import Status
from tests.handlers.test_check_stack import finding, settings_for
from tests.rig.fake_ollama import FakeOllama
from tests.rig.stack import DifyStack

RAW = b"A=ok\nNOTE=caf\xe9 cr\xe8me\nOPENAI_API_BASE=http://127.0.0.1:11434/v1\nB=\xff\xfe\n"


def test_reading_never_raises_and_names_the_lines(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(RAW)
    env = read_env_file(path)
    assert env.undecodable == (2, 4)
    assert env.values["NOTE"] == "caf\ufffd cr\ufffdme" and env.values["A"] == "ok"
    assert undecodable_lines(b"A=1\n") == () and parse_env_bytes(b"A=1\n").undecodable == ()


def test_editing_another_line_keeps_the_bytes_exactly(tmp_path: Path) -> None:
    text = decode_for_editing(RAW)
    assert encode_for_writing(text) == RAW
    new, edits = env_edit.set_values(text, {"OPENAI_API_BASE": "http://host.docker.internal:1/v1"})
    assert len(edits) == 1
    data = encode_for_writing(new)
    assert data == RAW.replace(b"http://127.0.0.1:11434/v1", b"http://host.docker.internal:1/v1")
    path = tmp_path / ".env"
    path.write_bytes(RAW)
    env_edit.write_text(path, new, backup.sha256(RAW))
    assert path.read_bytes() == data


def test_compose_environment_reads_an_env_file_with_such_bytes(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(RAW)
    compose = tmp_path / "docker-compose.yaml"
    compose.write_text("services:\n  api:\n    env_file: .env\n    environment:\n      X: ${A}\n")
    config = load_compose((compose,), {"A": "ok"})
    assert config.services["api"].environment["NOTE"] == "caf\ufffd cr\ufffdme"


@pytest.mark.docker
def test_check_warns_and_names_the_line(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
) -> None:
    stack = restore_healthy_stack
    stack.env_path.write_bytes(stack.env_path.read_bytes() + b"NOTE=caf\xe9\n")
    lines = stack.env_path.read_bytes().count(b"\n")
    report = run_check(settings_for(stack, session_ollama))
    env_file = finding(report, "env.file")
    assert env_file.status is Status.WARN
    assert env_file.summary == f".env line {lines} is not valid UTF-8"
    assert "Compose v1" in env_file.detail and "UTF-8" in env_file.remedy
    assert not [f for f in report.findings if "probe error" in f.summary]
