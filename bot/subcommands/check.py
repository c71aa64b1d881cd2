"""`check`: run (or join) the probe set and post the report as Block Kit."""

from __future__ import annotations

import logging

from bot.render.check import render_report
from bot.render.mrkdwn import code, escape
from bot.subcommands import Context, Invocation, Registry, Subcommand, UsageError
from handlers.report_text import render_text

log = logging.getLogger(__name__)


def parse(args: tuple[str, ...]) -> None:
    if args:
        raise UsageError(f"`check` takes no arguments (got {code(' '.join(args), 100)})")


def run(invocation: Invocation, ctx: Context) -> str:
    progress = ctx.progress(
        f":hourglass_flowing_sand: Checking Dify ↔ Ollama on this host… (asked by "
        f"{invocation.user_mention})"
    )
    report = ctx.check()
    notes = []
    if getattr(ctx, "shared_check", False):
        notes.append("_Shared a check that was already running._")
    engine = ctx.engine_note()
    if engine:
        notes.append(f":warning: Docker engine unreachable: {escape(engine)}")
    rendered = render_report(
        report,
        requested_by=invocation.user_mention,
        finding_buttons=ctx.registry.finding_buttons,
        notes=notes,
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
                    title="Full check report",
                )
            except Exception as exc:  # the summary is already posted
                log.warning("request %s: full report upload failed: %s", invocation.request_id, exc)
    return str(report.status)


def register(registry: Registry) -> None:
    registry.add_subcommand(
        Subcommand(
            name="check",
            usage="check",
            summary="Diagnose Dify ↔ Ollama connectivity (read-only)",
            mutating=False,
            run=run,
            parse=parse,
        )
    )
