"""`history [24h|7d|WINDOW]`: the incidents of a window and a chart of Ollama's reach latency
and the check status, the chart uploaded into the answer's thread."""

from __future__ import annotations

import logging
import time

from bot.render.history import render_timeline
from bot.render.limits import escape
from bot.subcommands import Context, Invocation, Registry, Subcommand, UsageError
from config.i18n import gettext as _
from handlers.history import open_history
from handlers.history_timeline import build_timeline, parse_since
from handlers.results import HandlerError

log = logging.getLogger(__name__)

USAGE = "history [24h|7d|WINDOW]"


def parse(args: tuple[str, ...]) -> tuple[str, float]:
    if len(args) > 1:
        raise UsageError(_("history takes one window, such as 24h or 7d"))
    window = args[0] if args else "24h"
    try:
        return window, parse_since(window)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run(invocation: Invocation, ctx: Context) -> str:
    window, seconds = invocation.options or ("24h", 86400.0)
    settings = ctx.settings
    history = open_history(settings.state_path, settings.history_days)
    try:
        now = time.time()
        since = now - seconds
        checks = history.checks_since(since)
        timeline = build_timeline(
            checks, history.actions_between(since, now), since, now, history.problem
        )
    finally:
        history.close()
    text, blocks = render_timeline(timeline, escape(window))
    ts = ctx.reply(text, blocks)
    thread = ts or invocation.thread_ts
    try:
        from handlers.history_chart import render_png

        png = render_png(timeline)
    except HandlerError as exc:
        ctx.post(invocation.channel_id, f":warning: {escape(str(exc))}", thread_ts=thread)
        return "no-chart"
    try:
        ctx.client.files_upload_v2(
            channel=invocation.channel_id,
            thread_ts=thread,
            filename="dify-ollama-history.png",
            content=png,
            title=_("Reach latency and status, last {window}").format(window=window),
        )
    except Exception as exc:  # the timeline is posted; say why the picture is not
        log.warning("request %s: chart upload failed: %s", invocation.request_id, exc)
        ctx.ephemeral(
            ":warning: "
            + _("The chart could not be uploaded ({error}).").format(error=type(exc).__name__)
        )
        return "no-chart"
    return "ok"


def register(registry: Registry) -> None:
    registry.add_subcommand(
        Subcommand(
            name="history",
            usage=USAGE,
            summary=_("Incidents of the last 24 h (or 7d ...) and a latency/status chart"),
            mutating=False,
            run=run,
            parse=parse,
        )
    )
