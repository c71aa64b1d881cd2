"""`logs`: a service's redacted log in a thread, and the "Logs" button on check findings.

A parent message says what was asked ("Logs: api, last 100 lines, asked by @x"); the log goes
into its thread, as a code block when short, as an uploaded text snippet otherwise. Asked from
inside a thread (an app mention, or the button under a check report), everything goes into that
thread. The host work, redaction included, is handlers.logs.fetch_logs: this module only turns
arguments into that call and its result into Slack messages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bot.render.limits import MAX_SECTION, code_block, context, section
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
from config.i18n import ngettext
from handlers.logs import (
    USAGE,
    LogRequest,
    LogResult,
    LogsUsageError,
    fetch_logs,
    parse_lines,
    parse_request,
    parse_service,
)
from handlers.results import Finding, Report, Status

LOGS_ACTION = ACTION_PREFIX + "logs:show"
BUTTON_LINES = 100
# A log this small reads best inline; anything bigger is a snippet (collapsible, downloadable,
# and not limited to 3000 characters).
INLINE_MAX_LINES = 40
INLINE_MAX_CHARS = 2500


@dataclass(frozen=True)
class Upload:
    filename: str
    content: str
    title: str


@dataclass(frozen=True)
class LogsMessage:
    """What goes to Slack for one result: the parent, then either a reply or an upload."""

    parent_text: str
    parent_blocks: list[dict[str, Any]]
    reply_text: str | None = None  # inline code block or "nothing to show"
    reply_blocks: list[dict[str, Any]] | None = None
    upload: Upload | None = None


def parse(args: tuple[str, ...]) -> LogRequest:
    try:
        return parse_request(args)
    except LogsUsageError as exc:
        raise UsageError(escape(str(exc))) from None


def _facts(result: LogResult) -> str:
    parts = [_("container {name}").format(name=code(result.container)), escape(result.state)]
    count = result.lines_returned
    if result.grep:
        shown = ngettext("{count} line of {fetched}", "{count} lines of {fetched}", count).format(
            count=count, fetched=result.lines_fetched
        )
    else:
        shown = ngettext("{count} line", "{count} lines", count).format(count=count)
    parts.append(shown)
    if result.redactions:
        parts.append(
            ngettext(
                "{count} secret redacted", "{count} secrets redacted", result.redactions
            ).format(count=result.redactions)
        )
    if result.truncated:
        parts.append(_("long lines cut"))
    return " · ".join(parts)


def render(result: LogResult, requested_by: str) -> LogsMessage:
    """Pure: a LogResult as Slack messages (the bench times this step too)."""
    # requested_by is a <@U123> mention: Slack renders it, so it is not escaped.
    header = _("Logs: {what}, asked by {who}").format(
        what=escape(result.describe()), who=requested_by
    )
    notes = [f":warning: {escape(note)}" for note in result.notes]
    parent_blocks = [section(header), context(_facts(result), *notes)]
    if result.empty:
        text = _("Nothing to show: {why}").format(
            why=escape("; ".join(result.notes) or _("the log is empty"))
        )
        return LogsMessage(header, parent_blocks, reply_text=text, reply_blocks=[section(text)])
    inline = code_block(result.text, MAX_SECTION)
    small = (
        result.lines_returned <= INLINE_MAX_LINES
        and len(result.text) < INLINE_MAX_CHARS
        and len(inline) <= MAX_SECTION
        and not inline.endswith("…```")
    )
    summary = escape(f"{result.service}: {result.lines_returned} lines")
    if small:
        return LogsMessage(
            header, parent_blocks, reply_text=summary, reply_blocks=[section(inline)]
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    upload = Upload(
        filename=f"{result.service}-{stamp}.log",
        content=result.text + "\n",
        title=_("{what} ({container}, redacted)").format(
            what=result.describe(), container=result.container
        ),
    )
    return LogsMessage(header, parent_blocks, upload=upload)


def deliver(ctx: Context, channel: str, thread_ts: str | None, message: LogsMessage) -> str:
    """Post the parent (or, inside a thread, the same header into it), then the log under it.
    Returns the thread every reply went to."""
    if thread_ts is None:
        parent = ctx.post(channel, message.parent_text, message.parent_blocks)
    else:
        parent = thread_ts
        ctx.post(channel, message.parent_text, message.parent_blocks, thread_ts=parent)
    if message.upload is not None:
        ctx.upload_text(
            channel, parent, message.upload.filename, message.upload.content, message.upload.title
        )
    elif message.reply_text is not None:
        ctx.post(channel, message.reply_text, message.reply_blocks, thread_ts=parent)
    return parent


def run(invocation: Invocation, ctx: Context) -> str:
    request = invocation.options if isinstance(invocation.options, LogRequest) else None
    request = request or parse(invocation.args)
    result = fetch_logs(
        ctx.settings, request.service, request.lines, since=request.since, grep=request.grep
    )
    deliver(
        ctx, invocation.channel_id, invocation.thread_ts, render(result, invocation.user_mention)
    )
    return "empty" if result.empty else "ok"


# --- the "Logs" button under check findings -----------------------------------------------------
def logs_button(finding: Finding, report: Report) -> dict[str, Any] | None:
    if not finding.service or finding.status not in (Status.FAIL, Status.WARN):
        return None
    return button(_("Logs"), LOGS_ACTION, {"service": finding.service, "lines": BUTTON_LINES})


def on_click(click: Click, ctx: Context) -> str:
    value = click.value if isinstance(click.value, dict) else {}
    try:
        service = parse_service(str(value.get("service", "")))
        lines = parse_lines(value.get("lines", BUTTON_LINES))
    except LogsUsageError:
        ctx.ephemeral(_("This Logs button is not valid any more: use `/dify-ollama logs SERVICE`."))
        return "usage"
    result = fetch_logs(ctx.settings, service, lines)
    # click.thread_ts is the report's thread: the logs go under the report.
    deliver(ctx, click.channel_id, click.thread_ts, render(result, click.user_mention))
    return "empty" if result.empty else "ok"


def register(registry: Registry) -> None:
    registry.add_subcommand(
        Subcommand(
            name="logs",
            usage=USAGE,
            summary=_("A service's recent log, secrets redacted, in a thread"),
            mutating=False,
            run=run,
            parse=parse,
        )
    )
    registry.add_action(Action(LOGS_ACTION, mutating=False, run=on_click, command="logs:button"))
    registry.add_finding_button(logs_button)
