"""Block Kit rendering of a Report within Slack's limits, whatever the report."""

from __future__ import annotations

import json

import pytest

from bot.render.check import render_report
from bot.subcommands import ACTION_PREFIX, button
from handlers.report_text import render_text
from handlers.results import Finding, Report, Status
from tests.bot.conftest import sample_report
from tests.bot.fakes.slack_api import block_problems

LOGS = ACTION_PREFIX + "logs:show"


def logs_button(finding, report):
    return button("Logs", LOGS, {"service": finding.service}) if finding.service else None


def test_small_report_layout():
    rendered = render_report(
        sample_report(problems=2, passed=3), requested_by="<@U1>", finding_buttons=[logs_button]
    )
    kinds = [b["type"] for b in rendered.blocks]
    assert kinds == ["header", "section", "actions", "section", "actions", "section", "context"]
    assert rendered.blocks[0]["text"]["text"].startswith(":x: Dify ↔ Ollama: 1 problem, 1 warning")
    problem = rendered.blocks[1]["text"]["text"]
    assert problem.startswith(":x: *plugin_daemon cannot reach Ollama #0*")
    first = sample_report(problems=2, passed=3).problems[0]
    assert f"`{first.id}`" in problem.splitlines()[0]  # the stable id alerts key on
    assert "```" in problem and "*Fix:* Set the base URL" in problem
    assert json.loads(rendered.blocks[2]["elements"][0]["value"]) == {"service": "plugin_daemon"}
    assert ":white_check_mark: api container running #0" in rendered.blocks[5]["text"]["text"]
    context = rendered.blocks[-1]["elements"][0]["text"]
    assert "dify-host" in context and "1.2 s" in context and "<@U1>" in context
    assert not rendered.degraded and not block_problems(rendered.blocks)


def test_healthy_and_empty_reports():
    healthy = render_report(sample_report(problems=0, passed=3))
    assert healthy.blocks[0]["text"]["text"] == ":white_check_mark: Dify ↔ Ollama: healthy"
    empty = render_report(Report(findings=(), duration_ms=0))
    assert not block_problems(empty.blocks)
    assert "nothing was checked" in json.dumps(empty.blocks)


@pytest.mark.parametrize(
    "problems,passed,detail", [(200, 500, 10_000), (48, 0, 5000), (0, 2000, 0), (30, 30, 2900)]
)
def test_oversized_reports_degrade_within_limits(problems, passed, detail):
    report = sample_report(problems=problems, passed=passed, detail_chars=detail)
    rendered = render_report(
        report, requested_by="<@U1>", finding_buttons=[logs_button] * 30, notes=["x" * 5000] * 20
    )
    assert block_problems(rendered.blocks) == []
    assert len(rendered.blocks) <= 50
    assert rendered.blocks[0]["type"] == "header" and rendered.blocks[-1]["type"] == "context"
    assert rendered.degraded == (problems + passed > 40)
    assert len(rendered.text) <= 3000


def test_hostile_text_is_escaped_and_fences_survive():
    finding = Finding(
        id="x",
        status=Status.FAIL,
        summary="<!channel> & <@U999>",
        detail="```\n<script>" + "y" * 5000,
        remedy="a > b",
    )
    rendered = render_report(Report(findings=(finding,), duration_ms=1))
    text = rendered.blocks[1]["text"]["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; &lt;@U999&gt;" in text
    assert len(text) <= 3000 and text.count("```") == 2
    assert "a &gt; b" in text


def test_broken_button_maker_does_not_cost_the_report():
    def broken(finding, report):
        raise RuntimeError("bug")

    rendered = render_report(sample_report(), finding_buttons=[broken, logs_button])
    assert [b["type"] for b in rendered.blocks].count("actions") == 1


def test_render_text_has_everything():
    """The attachment is the terminal's report: every finding, its status, evidence, remedy."""
    text = render_text(sample_report(problems=3, passed=2))
    lines = text.splitlines()
    assert sum(line.startswith("  FAIL  problem.") for line in lines) == 2
    assert sum(line.startswith("  WARN  problem.") for line in lines) == 1
    assert sum(line.startswith("  ok    ok.") for line in lines) == 2
    assert text.count("remedy   Set the base URL") == 3 and text.count("evidence ") == 3
