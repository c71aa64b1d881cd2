"""Text from users and from the host never acts as mrkdwn: no `<!channel>`, no disguised link, no
stray mention in any message, notification text, ephemeral answer or audit-channel echo.

At the wire: signed requests in, the Slack double records every call out, and
`control_sequences()` lists each `<...>` Slack would act on except the bot's own mentions of
user ids and links to channel ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.audit import describe
from bot.render.mrkdwn import code, escape, guard, guard_blocks
from bot.subcommands.fix_env import render_plan
from handlers import fix_decide
from handlers.results import Finding, HandlerError, Report, Status
from tests.bot.fakes.slack_api import control_sequences
from tests.rig.scenes import incident_report, scene_of, settings_for

HOSTILE = "<!channel> <!here> <https://evil.example/|Dify docs> <@UVICTIM> `x` *b*"
AUDIT = "CAUDIT"


def hostile_report() -> Report:
    return Report(
        findings=(
            Finding(
                "dify.base_url",
                Status.FAIL,
                f"Ollama base URL wrong for model {HOSTILE}",
                detail=f"llama3 {HOSTILE}: http://127.0.0.1:11434 <- loopback",
                remedy=f"Set it in Dify {HOSTILE}",
                service="plugin_daemon",
                fixable=True,
            ),
            Finding("ollama.host", Status.OK, f"Ollama answers, model {HOSTILE}"),
        ),
        duration_ms=10,
        context={"host": "h<!channel>", "dify_dir": "/opt/`dify`<!here>"},
    )


def test_audit_channel_echoes_user_arguments_as_text(run_bot: Any) -> None:
    bot = run_bot(audit_channel=AUDIT)
    for text in (
        f"check {HOSTILE}",  # usage
        f"{HOSTILE} now",  # unknown subcommand
        f"logs {HOSTILE}",  # bad service name
        '"<!channel>',  # does not parse
    ):
        answer = bot.command(text).json()
        assert control_sequences(answer["text"]) == [], answer
    bot.mention(f"<@UBOT0001> restart {HOSTILE}", event_id="Ev9")
    echoes = bot.slack.wait_for(
        "chat.postMessage", count=5, where=lambda c: c.params.get("channel") == AUDIT
    )
    assert all("&lt;!channel&gt;" in c.params["text"] for c in echoes[:3])
    assert bot.slack.control_sequences() == [], bot.slack.control_sequences()
    # the audit file keeps what was typed, as data
    assert any("<!channel>" in " ".join(line["args"]) for line in bot.audit())


def test_report_and_notification_text_from_the_host_are_inert(run_bot: Any) -> None:
    bot = run_bot(check=lambda _s: hostile_report())
    bot.command("check")
    [update] = bot.slack.wait_for("chat.update")
    assert "&lt;!channel&gt;" in update.params["text"]  # the notification text too
    assert "&lt;!channel&gt;" in json.dumps(update.params["blocks"])
    assert bot.slack.control_sequences() == [], bot.slack.control_sequences()


def test_a_handler_error_is_shown_as_text(run_bot: Any) -> None:
    def broken(_settings: Any) -> Report:
        raise HandlerError(f"cannot read {HOSTILE}")

    bot = run_bot(check=broken)
    bot.command("check")
    bot.slack.wait_for("chat.update", where=lambda c: "failed" in str(c.params.get("text")))
    assert bot.slack.control_sequences() == [], bot.slack.control_sequences()


def test_the_fix_plan_escapes_paths_and_names(tmp_path: Path) -> None:
    """Stored text (the Dify folder's path, the project's name) in the plan's blocks and its
    notification text: escaped by the renderer itself, before the wire's guard."""
    root = tmp_path / "x<!channel>`y"
    root.mkdir()
    from tests.rig.scenes import incident_folder

    folder = incident_folder(root)
    settings = settings_for(folder, tmp_path / "state")
    plan = fix_decide.plan(scene_of(settings), incident_report(), settings)
    text, blocks = render_plan(plan, "<@UOPS>", note=f"note {escape(HOSTILE)}")
    rendered = [text, *(t for t in _mrkdwn(blocks))]
    assert [m for t in rendered for m in control_sequences(t)] == []
    assert "&lt;!channel&gt;" in json.dumps(blocks)


def _mrkdwn(blocks: list[dict[str, Any]]) -> list[str]:
    from tests.bot.fakes.slack_api import mrkdwn_in

    return mrkdwn_in(blocks)


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (
            {
                "user": "UALICE",
                "channel": "COPS",
                "command": "logs",
                "args": ["api", "--grep", "`<!channel>`"],
                "outcome": "ok",
                "duration_ms": 3,
                "request_id": "abc123",
            },
            "<@UALICE> `logs api --grep ˋ&lt;!channel&gt;ˋ` in <#COPS> -> *ok*",
        ),
        (
            # a forged or damaged record: ids that are not ids are shown as code, not mentions
            {"user": "U1|x> <!here", "channel": "C1> <!channel", "command": "x", "args": []},
            "`U1|x&gt; &lt;!here` `x` in `C1&gt; &lt;!channel` -> *?*",
        ),
    ],
)
def test_describe_is_one_inert_line(line: dict[str, Any], shown: str) -> None:
    text = describe(line)
    assert shown in text
    assert control_sequences(text) == []


def test_the_wire_guard_keeps_mentions_and_neutralizes_the_rest() -> None:
    text = "hi <@UOPS> in <#COPS>: <!channel> <http://x|y> <@U1|name> a < b > c"
    assert guard(text) == (
        "hi <@UOPS> in <#COPS>: &lt;!channel&gt; &lt;http://x|y&gt; &lt;@U1|name&gt; "
        "a &lt; b &gt; c"
    )
    assert guard(guard(text)) == guard(text)
    assert guard(escape(text)) == escape(text)  # idempotent on escaped text
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "<!channel>"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "<!here>"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "<https://e|f>"}]},
    ]
    guarded = guard_blocks(blocks)
    assert guarded[0] == blocks[0]  # plain_text is never parsed by Slack
    assert guarded[1]["text"]["text"] == "&lt;!here&gt;"
    assert guarded[2]["elements"][0]["text"] == "&lt;https://e|f&gt;"
    assert code("a`b\nc<d>") == "`aˋb c&lt;d&gt;`"
