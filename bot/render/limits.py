"""Slack's message limits and helpers that keep any content within them (degrade, never fail).

`escape` is bot.render.mrkdwn's, re-exported for the renderers that import it from here."""

from __future__ import annotations

from typing import Any

from bot.render.mrkdwn import escape

MAX_BLOCKS = 50  # blocks per message
MAX_SECTION = 3000  # characters of a section's text
MAX_HEADER = 150  # characters of a header block's plain text
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 2000  # characters per context element
MAX_ACTIONS = 25  # elements per actions block
MAX_FALLBACK = 3000  # the top-level `text` (notifications); Slack truncates at 40k, keep it short
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


def fit(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Last line of defence: at most MAX_BLOCKS blocks, the last one saying what was cut."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    kept = blocks[: MAX_BLOCKS - 1]
    return [*kept, context(f"{len(blocks) - len(kept)} more blocks not shown (Slack's limit).")]
