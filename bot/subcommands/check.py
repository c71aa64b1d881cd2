"""`check`: run (or join) the probe set and post the report as Block Kit, with a "Chat test"
button (dify.chat: a one-token chat from inside Dify, which a plain check does not run because
it loads the model)."""

from __future__ import annotations

import logging
from typing import Any

from bot.render.check import render_finding, render_report
from bot.render.mrkdwn import code, escape
from bot.subcommands import (
    ACTION_PREFIX,
    Action,
    Click,
    Context,
    Invocation,
    Registry,
    Subcommand,
    UsageError,
    button,
)
from config.i18n import gettext as _
from handlers.report_text import render_text
from handlers.results import Finding, Report, Status

CHAT_ACTION = ACTION_PREFIX + "chat-test"

log = logging.getLogger(__name__)


def parse(args: tuple[str, ...]) -> None:
    if args:
        raise UsageError(
            _("`check` takes no arguments (got {args})").format(args=code(" ".join(args), 100))
        )


def run(invocation: Invocation, ctx: Context) -> str:
    progress = ctx.progress(
        _(":hourglass_flowing_sand: Checking Dify ↔ Ollama on this host… (asked by {who})").format(
            who=invocation.user_mention
        )
    )
    report = ctx.check()
    notes = []
    if getattr(ctx, "shared_check", False):
        notes.append(_("_Shared a check that was already running._"))
    engine = ctx.engine_note()
    if engine:
        notes.append(_(":warning: Docker engine unreachable: {error}").format(error=escape(engine)))
    rendered = render_report(
        report,
        requested_by=invocation.user_mention,
        finding_buttons=ctx.registry.finding_buttons,
        notes=notes,
        report_buttons=chat_buttons(report),
    )
    progress.update(rendered.text, rendered.blocks)
    if rendered.degraded:
        # The message had to leave findings out: the whole report goes into its thread.
        channel = invocation.channel_id
        thread = progress.ts or invocation.thread_ts
        if thread is not None:
            try:
                ctx.upload_text(
                    channel,
                    thread,
                    "check-report.txt",
                    render_text(report),
                    title=_("Full check report"),
                )
            except Exception as exc:  # the summary is already posted
                log.warning("request %s: full report upload failed: %s", invocation.request_id, exc)
    return str(report.status)


def chat_buttons(report: Report) -> list[dict[str, Any]]:
    """A "Chat test" button when the report did not chat already and found the Dify project."""
    project = report.finding("dify.project")
    if report.finding("dify.chat") is not None or project is None:
        return []
    if project.status is not Status.OK:
        return []
    return [button(_("Chat test"), CHAT_ACTION, {"v": 1})]


def chat_test(ctx: Context) -> Finding:
    """dify.chat on its own, bounded by CHAT_TIMEOUT (handlers/probes/chat.py)."""
    from handlers.check import run_check  # the probes' imports: only when a click needs them

    report = run_check(ctx.settings, ("dify.chat",), chat="on")
    found = report.finding("dify.chat")
    return found or Finding("dify.chat", Status.FAIL, _("the chat test gave no answer"))


def on_chat_click(click: Click, ctx: Context) -> str:
    # click.thread_ts is the report's thread: the answer goes under the report.
    waiting = _(
        ":hourglass_flowing_sand: Chat test: one token from a configured model, from inside "
        "Dify (up to {seconds} s; asked by {who})"
    ).format(seconds=f"{ctx.settings.chat_timeout:g}", who=click.user_mention)
    ts = ctx.post(click.channel_id, waiting, thread_ts=click.thread_ts)
    found = chat_test(ctx)
    rendered = render_finding(found, _("Chat test"), click.user_mention)
    ctx.update(click.channel_id, ts, rendered.text, rendered.blocks)
    return str(found.status)


def register(registry: Registry) -> None:
    registry.add_subcommand(
        Subcommand(
            name="check",
            usage="check",
            summary=_("Diagnose Dify ↔ Ollama connectivity (read-only)"),
            mutating=False,
            run=run,
            parse=parse,
        )
    )
    registry.add_action(
        Action(CHAT_ACTION, mutating=False, run=on_chat_click, command="check:chat-test")
    )
