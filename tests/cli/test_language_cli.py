"""`BOT_LANGUAGE` and `--lang` as a user (or a remote bot over SSH) runs the CLI: a real
subprocess. The engine test checks a real stack in Chinese; the others need no engine."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from handlers.text_width import display_width
from tests.rig.cli_process import run_cli, run_python
from tests.rig.fake_ollama import FakeOllama
from tests.rig.stack import DifyStack

DEAD_OLLAMA = {"OLLAMA_URL": "http://127.0.0.1:9", "CHECK_TIMEOUT": "2"}


def test_help_in_chinese_without_loading_the_settings_model() -> None:
    code = (
        "import sys, cli.main\n"
        "try:\n"
        "    cli.main.main(['--lang', 'zh-CN', 'check', '--help'])\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code, 'pydantic' in sys.modules)\n"
    )
    proc = run_python("-c", code)
    assert proc.stdout.startswith("用法：dify-ollama check [-h]"), proc.stdout
    assert "以 JSON 格式输出报告" in proc.stdout and "选项:" in proc.stdout
    assert proc.stdout.rstrip().endswith("exit 0 False")  # --help never imports pydantic
    env_help = run_cli("--help", env={"BOT_LANGUAGE": "zh-CN"})
    assert "--lang en|zh-CN" in env_help.stdout and "诊断并修复" in env_help.stdout


def test_unknown_language_is_a_one_line_usage_error() -> None:
    proc = run_cli("check", env={"BOT_LANGUAGE": "klingon-x", **DEAD_OLLAMA})
    assert proc.returncode == 2
    assert proc.stderr == (
        "dify-ollama: configuration error: BOT_LANGUAGE: must be one of en, zh-CN\n"
    )
    flag = run_cli("--lang", "klingon-x", "check")
    assert flag.returncode == 2
    assert flag.stderr.splitlines()[-1] == (
        "dify-ollama: error: argument --lang: must be one of en, zh-CN"
    )


def test_flag_overrides_the_variable_and_the_env_file(tmp_path: Path) -> None:
    (tmp_path / "dify-ollama-bot.env").write_text("BOT_LANGUAGE=zh-CN\n")
    from_file = run_cli("check", "--only", "ollama.host", cwd=tmp_path, env=DEAD_OLLAMA)
    assert from_file.returncode == 1, from_file.stderr
    assert from_file.stdout.startswith("Dify -> Ollama 检查：失败（1 项失败，0 项警告）")
    assert "修复方法" in from_file.stdout
    english = run_cli(
        "--lang", "en", "check", "--only", "ollama.host", cwd=tmp_path, env=DEAD_OLLAMA
    )
    assert english.stdout.startswith("Dify -> Ollama check: FAIL (1 failing, 0 warning)")
    assert "remedy   Start Ollama" in english.stdout


def test_json_keeps_keys_and_ids_and_translates_text() -> None:
    proc = run_cli("--lang=zh-CN", "check", "--json", "--only", "ollama.host", env=DEAD_OLLAMA)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    english = json.loads(
        run_cli("check", "--json", "--only", "ollama.host", env=DEAD_OLLAMA).stdout
    )
    assert data.keys() == english.keys()
    finding, original = data["findings"][0], english["findings"][0]
    assert finding.keys() == original.keys()
    assert (finding["id"], finding["status"]) == (original["id"], original["status"])
    assert finding["summary"].startswith("Ollama 在 http://127.0.0.1:9 没有应答")
    assert original["summary"].startswith("Ollama does not answer at http://127.0.0.1:9")
    assert finding["remedy"].startswith("启动 Ollama")


@pytest.mark.docker
def test_check_of_a_real_stack_in_chinese(
    healthy_stack: DifyStack, session_ollama: FakeOllama, docker_engine: Any
) -> None:
    """The shared healthy stack, checked with OLLAMA_URL at a dead port (the stack itself is
    not changed: Dify's rows still point at the session's fake Ollama)."""
    env = {
        "DIFY_DIR": str(healthy_stack.dir),
        "DIFY_COMPOSE_PROJECT": healthy_stack.project,
        "OLLAMA_URL": "http://127.0.0.1:9",
        "CHECK_TIMEOUT": "10",  # the machine may be loaded; the deadline is not under test
        "COLUMNS": "80",
        "BOT_LANGUAGE": "zh-CN",
    }
    proc = run_cli("check", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith("Dify -> Ollama 检查：失败（")
    rows = {
        m.group(2): m.group(1) for m in re.finditer(r"^  (\S+)\s+([a-z_]+\.[a-z_.]+) ", out, re.M)
    }
    assert rows["docker.engine"] == "正常" and rows["dify.project"] == "正常"
    assert rows["ollama.host"] == "失败"
    assert rows["container.reach"] == "正常"  # Dify's own URL still answers
    flat = re.sub(r"\s+", "", out)  # wrapped lines joined
    assert (
        re.sub(r"\s+", "", f"Dify 项目 {healthy_stack.project}，位于 {healthy_stack.dir}") in flat
    )
    assert "处理建议：" in out and "修复方法" in out
    assert "Ollama在http://127.0.0.1:9没有应答" in flat
    print(out)  # the README's sample comes from this output
    assert healthy_stack.db_password not in out + proc.stderr
    for line in out.splitlines():  # an 80-column terminal: only an unbreakable word may exceed
        assert display_width(line) <= 80 or " " not in line.strip(), line
    data = json.loads(run_cli("check", "--json", env=env).stdout)
    ids = [f["id"] for f in data["findings"]]
    assert ids[:4] == ["docker.engine", "dify.project", "dify.containers", "dify.health"]
    assert {f["status"] for f in data["findings"]} <= {"ok", "warn", "fail", "skip"}
