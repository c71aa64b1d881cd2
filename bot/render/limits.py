"""Slack's message limits and helpers that keep any content within them (degrade, never fail).

`escape` is bot.render.mrkdwn's, re-exported for the renderers that import it from here."""

from __future__ import annotations

from typing import Any

from bot.render.mrkdwn import escape
from config.i18n import gettext as _

MAX_BLOCKS = 50  # blocks per message
MAX_SECTION = 3000  # characters of a section's text
MAX_HEADER = 150  # characters of a header block's plain text
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 2000  # characters per context element
MAX_ACTIONS = 25  # elements per actions block
MAX_FALLBACK = 3000  # the top-level `text` (notifications); Slack truncates at 40k, keep it short
# chat.postMessage and chat.update refuse a message whose blocks' texts add up to more than
# about 12,000 characters (`msg_blocks_too_long`, undocumented: slackapi/bolt-js #2509 saw it
# at ~13,200, #2867 at 11,341), far below 50 x 3000. Keep a margin under the lowest report.
MAX_MESSAGE_TEXT = 10_000
ELLIPSIS = "…"


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS


def code_block(text: str, limit: int) -> str:
    """`text` as a ``` block of at most `limit` characters, fences included."""
    body = escape(text).replace("```", "`\u200b``")
    return "```" + truncate(body, max(1, limit - 6)) + "```"


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION)}}


def header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(text, MAX_HEADER), "emoji": True},
    }


def context(*texts: str) -> dict[str, Any]:
    elements = [
        {"type": "mrkdwn", "text": truncate(t, MAX_CONTEXT_TEXT)}
        for t in texts[:MAX_CONTEXT_ELEMENTS]
        if t
    ]
    return {"type": "context", "elements": elements or [{"type": "mrkdwn", "text": " "}]}


def actions(elements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "actions", "elements": elements[:MAX_ACTIONS]}


def split_lines(lines: list[str], limit: int = MAX_SECTION) -> list[str]:
    """Pack lines into as few texts of at most `limit` characters as possible."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        line = truncate(line, limit)
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks


def text_size(value: Any) -> int:
    """The characters of every `text` string inside blocks: what Slack adds up."""
    if isinstance(value, list):
        return sum(text_size(item) for item in value)
    if isinstance(value, dict):
        return sum(
            len(item) if key == "text" and isinstance(item, str) else text_size(item)
            for key, item in value.items()
        )
    return 0


def fit(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Last line of defence: at most MAX_BLOCKS blocks whose texts add up to at most
    MAX_MESSAGE_TEXT characters, the last one saying what was cut. Renderers that can say
    more (a report with a file attached) keep within the limits themselves."""
    if len(blocks) <= MAX_BLOCKS and text_size(blocks) <= MAX_MESSAGE_TEXT:
        return blocks
    note_room = 100
    kept: list[dict[str, Any]] = []
    size = 0
    for block in blocks[: MAX_BLOCKS - 1]:
        size += text_size(block)
        if size > MAX_MESSAGE_TEXT - note_room:
            break
        kept.append(block)
    cut = len(blocks) - len(kept)
    more = _("{count} more blocks not shown (Slack's message limits).").format(count=cut)
    return [*kept, context(more)]
