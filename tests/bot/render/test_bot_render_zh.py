"""The Slack report in Chinese (BOT_LANGUAGE=zh-CN): header, finding summaries and remedies
as the probes write them, the registry's buttons and their confirmations; ids, action ids and
button values unchanged; text from the host still escaped after translation. No engine: the
probes run against a Docker socket and an Ollama that are not there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.render.check import render_report
from bot.subcommands import Registry, load_registry
from bot.subcommands.check import chat_buttons
from bot.subcommands.fix_env import render_plan
from config import i18n
from config.settings import Settings
from handlers.check import run_check
from handlers.results import Finding, Report, Status
from tests.bot.fakes.slack_api import block_problems


@pytest.fixture
def chinese() -> Iterator[None]:
    with i18n.language("zh-CN"):
        yield


def dead_host_report(tmp_path: Path) -> Report:
    settings = Settings(
        docker_host=f"unix://{tmp_path}/none.sock",
        ollama_url="http://127.0.0.1:9",
        check_timeout=2,
        state_dir=tmp_path,
    )
    return run_check(settings, ("docker.engine", "ollama.host", "ollama.bind"))


def texts(blocks: list[dict[str, object]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_report_header_findings_and_remedies_in_chinese(chinese: None, tmp_path: Path) -> None:
    report = dead_host_report(tmp_path)
    rendered = render_report(report, requested_by="<@U1>")
    assert block_problems(rendered.blocks) == []
    header = rendered.blocks[0]
    assert header["type"] == "header"
    assert header["text"]["text"] == ":x: Dify ↔ Ollama：3 个问题"
    engine = rendered.blocks[1]["text"]["text"]
    assert engine.startswith(":x: *无法连接 Docker 引擎：Docker 套接字 ")
    assert "`docker.engine`" in engine  # the id stays as it is
    assert "*修复方法：* 启动引擎（`sudo systemctl start docker`）" in engine
    bind = next(b["text"]["text"] for b in rendered.blocks if "`ollama.bind`" in str(b))
    assert "本机的 TCP 端口 9 上没有程序监听" in bind
    assert "让 Ollama 监听所有网络接口" in bind  # the remedy, translated
    context = rendered.blocks[-1]["elements"][0]["text"]
    assert "请求人 <@U1>" in context
    assert rendered.text.startswith(":x: Dify ↔ Ollama：3 个问题: 无法连接 Docker 引擎")


def test_buttons_and_confirmations_in_chinese(chinese: None) -> None:
    registry: Registry = load_registry()  # summaries and labels are read when registered
    report = Report(
        (
            Finding("dify.project", Status.OK, "Dify 项目 docker"),
            Finding(
                "dify.base_url",
                Status.FAIL,
                "1 个模型凭据的 Ollama 基础 URL 错误：<!channel> `x`",
                remedy="在 Dify 中把这些模型的基础 URL 设为 http://host.docker.internal:11434",
                service="plugin_daemon",
                fixable=True,
            ),
        ),
        duration_ms=900,
    )
    rendered = render_report(
        report,
        finding_buttons=registry.finding_buttons,
        report_buttons=chat_buttons(report),
    )
    assert block_problems(rendered.blocks) == []
    buttons = [e for b in rendered.blocks if b["type"] == "actions" for e in b["elements"]]
    labels = {e["text"]["text"]: e for e in buttons}
    assert {"日志", "修复", "对话测试"} <= set(labels)
    assert labels["修复"]["action_id"] == "dify-ollama:fix-env:fix"  # ids never translated
    assert json.loads(labels["修复"]["value"]) == {"f": "dify.base_url"}
    assert json.loads(labels["日志"]["value"])["service"] == "plugin_daemon"
    # text from Dify or the host is escaped after translation, exactly as in English
    section = rendered.blocks[1]["text"]["text"]
    assert "<!channel>" not in section and "&lt;!channel&gt;" in section
    help_text = texts([{"summary": s.summary} for s in registry.subcommands.values()])
    assert "诊断 Dify ↔ Ollama 的连通性（只读）" in help_text


def test_fix_env_plan_buttons_confirm_in_chinese(chinese: None) -> None:
    class Step:
        base_sha256 = None
        values = {"OPENAI_API_BASE": "x"}
        preview = "- OPENAI_API_BASE=http://127.0.0.1:11434/v1\n+ OPENAI_API_BASE=..."
        services = ("api",)
        notes = ()

    class Plan:
        id, project, dify_dir, state = "p1", "docker", "/opt/dify/docker", "planned"
        env, override, db = Step(), None, None
        env_path = "/opt/dify/docker/.env"
        restart_services = ("api", "worker")
        instructions, unfixed, has_changes = (), (), True

        def summary(self) -> str:
            return "1 change"

    _text, blocks = render_plan(Plan(), "<@U1>")
    assert block_problems(blocks) == []
    assert blocks[0]["text"]["text"] == ":wrench: docker 的 fix-env 计划"
    apply = next(e for b in blocks if b["type"] == "actions" for e in b["elements"])
    assert apply["text"]["text"] == "应用"
    confirm = apply["confirm"]
    assert confirm["title"]["text"] == "应用这次修复？"
    assert confirm["confirm"]["text"] == "应用" and confirm["deny"]["text"] == "取消"
    assert "修改前会先保存备份" in confirm["text"]["text"]
    assert "*1. 从 `.env.example` 创建 `.env`*" in texts(blocks)


def test_english_is_the_default_and_unchanged() -> None:
    assert i18n.current() == "en"
    registry = load_registry()
    report = Report((Finding("dify.base_url", Status.FAIL, "bad", fixable=True),), 5)
    rendered = render_report(report, finding_buttons=registry.finding_buttons)
    assert rendered.blocks[0]["text"]["text"] == ":x: Dify ↔ Ollama: 1 problem"
    labels = [
        e["text"]["text"] for b in rendered.blocks if b["type"] == "actions" for e in b["elements"]
    ]
    assert labels == ["Fix"]


def test_watch_alert_and_recovery_in_chinese(chinese: None) -> None:
    from bot.render.watch import render_alert, render_thread_line
    from handlers.watch import ActionDone, Incident, Member, Notice, Seen

    opened = 1_764_554_400.0  # 2025-12-01 02:00 UTC
    reach = Seen(
        "container.reach",
        Status.FAIL,
        "从 plugin_daemon 无法访问 http://127.0.0.1:11434 上的 Ollama（refused）",
        remedy="<@U0> 把基础 URL 设为 http://host.docker.internal:11434",
        service="plugin_daemon",
    )
    incident = Incident("inc1", "gpu-01", opened, (Member(reach, opened, flaps=2),))
    text, blocks = render_alert(incident, opened + 60)
    assert block_problems(blocks) == []
    assert blocks[0]["text"]["text"] == ":rotating_light: gpu-01 上的 Dify ↔ Ollama：1 个问题 :x:"
    body = blocks[1]["text"]["text"]
    assert "_原为 ok，自 02:00 UTC 起为 fail_" in body and "反复波动：又失败了 2 次" in body
    assert "*修复方法：* &lt;@U0&gt; 把基础 URL" in body  # escaped after translation
    assert "静音：`/dify-ollama mute 30m [FINDING]`" in texts(blocks)
    assert text.endswith(": container.reach")  # ids unchanged
    closed = Incident(
        "inc1",
        "gpu-01",
        opened,
        (Member(reach, opened, recovered_at=opened + 420),),
        closed_at=opened + 420,
    )
    fixed = ActionDone(opened + 300, "UOPS", "fix-env:apply", "applied")
    line = render_thread_line(Notice("closed", closed, ("container.reach",), (fixed,)), opened)
    assert line == (
        ":white_check_mark: 7 分钟 后恢复，由 <@UOPS>（02:05 UTC 执行 `fix-env:apply`） 修复。"
    )
