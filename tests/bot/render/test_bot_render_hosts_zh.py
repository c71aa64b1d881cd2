"""The Slack texts of many hosts in Chinese (BOT_LANGUAGE=zh-CN): the `check @all` summary and
its per-host buttons, `@host` errors, the host line and an unreachable host's finding; English
unchanged. Texts a host sent (finding summaries in its JSON) are shown as they came. No engine;
tests/hosts runs the same paths through the bot against real hosts over SSH."""

from __future__ import annotations

import json
from pathlib import Path

from bot.render.hosts import host_problem, host_unreachable, on_host, render_summary
from bot.subcommands.hosts import HOST_CHAT, HOST_CHECK, HOST_FIX_PLAN, report_buttons, row_buttons
from config import i18n
from config.hosts import HostEntry, Hosts, SshTarget
from handlers import transport as t
from handlers.fanout import summary_rows
from handlers.results import Finding, Report, Status
from handlers.ssh_transport import classify
from tests.bot.fakes.slack_api import block_problems

TARGET = SshTarget("difyops", "10.0.0.5", 22, Path("/k/id"), Path("/k/known"))
HOSTS = Hosts((HostEntry("prod-1", TARGET), HostEntry("prod-2", TARGET)), "prod-1")


def answers() -> list[t.Answer]:
    broken = {
        "findings": [
            {"id": "dify.project", "status": "ok", "summary": "Dify 项目 docker"},
            {
                "id": "ollama.host",
                "status": "fail",
                "summary": "Ollama 没有应答",  # the host's own text, in its language
                "service": "api",
                "fixable": True,
            },
        ]
    }
    down = classify(HOSTS.entries[1], 255, "ssh: connect to host x port 22: Connection refused")
    assert down is not None
    return [t.Answer("prod-1", 1, broken), t.Answer("prod-2", 1, problem=down)]


def summary_texts() -> tuple[str, str]:
    text, blocks = render_summary(summary_rows(answers()), "<@U1>", row_buttons)
    assert block_problems(blocks) == []
    return text, json.dumps(blocks, ensure_ascii=False)


def test_the_summary_and_its_buttons_in_chinese() -> None:
    with i18n.language("zh-CN"):
        text, blocks = summary_texts()
    assert "Dify 主机：已检查 2 台（2 台失败）" in text
    assert "prod-1: 失败" in text
    assert "请求人 <@U1> · 最严重的排在前面 · 单台主机用 `check @NAME`" in blocks
    assert "*prod-2* · 失败" in blocks
    assert "prod-2：difyops@10.0.0.5:22 拒绝了 SSH 连接" in blocks
    assert "Ollama 没有应答" in blocks  # as the host sent it
    for label in ("重新检查", "api 日志", "制定 fix-env 计划", "对话测试"):
        assert f'"text": "{label}"' in blocks, label
    # action ids and values stay as they are
    elements = [e for b in json.loads(blocks) if b["type"] == "actions" for e in b["elements"]]
    checks = [json.loads(e["value"]) for e in elements if e["action_id"] == HOST_CHECK]
    assert checks == [{"host": "prod-1"}, {"host": "prod-2"}]


def test_the_summary_in_english_is_unchanged() -> None:
    text, blocks = summary_texts()
    assert "Dify hosts: 2 checked (2 fail)" in text and "prod-1: fail" in text
    assert "asked by <@U1> · worst first · `check @NAME` for one host" in blocks
    assert "prod-2: SSH connection refused at difyops@10.0.0.5:22" in blocks
    for label in ("Check again", "Logs api", "Plan fix-env", "Chat test"):
        assert f'"text": "{label}"' in blocks, label


def test_host_errors_and_lines_in_chinese() -> None:
    with i18n.language("zh-CN"):
        unknown = host_problem(HOSTS, "check", "nope")
        every = host_problem(HOSTS, "logs", "all")
        line = on_host("prod-1")
        gone = host_unreachable("prod-2", "prod-2：SSH 拒绝了机器人的密钥", "把公钥加入 a_b")
    assert unknown == ":warning: 未知主机 `nope`。可用主机：`prod-1`, `prod-2`，或 `@all`。"
    assert every == ":warning: `@all` 只能用于 `check`：其他命令请指定一台主机。"
    assert line == ":desktop_computer: 主机 *prod-1*"
    assert gone == ":x: prod-2：SSH 拒绝了机器人的密钥\n*处理方法：* 把公钥加入 a_b"
    assert on_host("prod-1") == ":desktop_computer: Host *prod-1*"
    assert host_unreachable("h", "down", "boot it") == ":x: down\n*Remedy:* boot it"


def test_the_chat_test_button_only_where_the_check_did_not_chat() -> None:
    project = Finding("dify.project", Status.OK, "ok")
    chatted = Finding("dify.chat", Status.OK, "chatted")
    assert HOST_CHAT in json.dumps(report_buttons("prod-1", Report((project,), 0)))
    assert HOST_CHAT not in json.dumps(report_buttons("prod-1", Report((project, chatted), 0)))
    lost = Finding("dify.project", Status.FAIL, "no project", fixable=True)
    elements = report_buttons("prod-1", Report((lost,), 0))
    assert [e["action_id"] for e in elements] == [HOST_CHECK, HOST_FIX_PLAN]
