"""Text into Slack's mrkdwn: the one place user and stored text is made inert.

Slack reads `<...>` in a message as a control sequence: `<!channel>` and `<!here>` notify
everyone, `<https://evil|Dify docs>` is a link that reads as something else, `<@U123>` mentions
a person. Any text the bot did not write itself (arguments, service and model names, URLs,
log lines, finding text from Dify, records on disk) goes through `escape`, or `code` when it
sits inside a `code span`. People are mentioned only through `mention`, channels through
`channel_link`, which accept nothing but Slack ids. `guard` is the last line of defence at the
wire: whatever a renderer forgot, no control sequence other than those two kinds leaves.
"""

from __future__ import annotations

import re
from typing import Any

# A backtick inside a code span would end it; this modifier letter looks the same.
_BACKTICK_LOOKALIKE = "\u02cb"
_USER_ID = re.compile(r"[UWB][A-Z0-9]{2,20}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,20}")
# The only `<...>` the bot sends on purpose: mentions of users and links to channels.
_ALLOWED_CONTROL = re.compile(r"<(?:@[UWB][A-Z0-9]{2,20}|#[CGD][A-Z0-9]{2,20})>")
# Text fields of Block Kit objects that Slack renders as mrkdwn (plain_text is never parsed).
_MRKDWN = "mrkdwn"


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str, limit: int = 300) -> str:
    """`text` as an inline code span: escaped, on one line, no backtick that could close it."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: max(0, limit - 1)] + "…"
    return "`" + escape(flat).replace("`", _BACKTICK_LOOKALIKE) + "`"


def mention(user_id: str) -> str:
    """A user mention when `user_id` is a Slack user id, else the text as code (never a
    control sequence made of what someone typed or stored)."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id or "") else code(user_id or "?")


def channel_link(channel_id: str) -> str:
    if _CHANNEL_ID.fullmatch(channel_id or ""):
        return f"<#{channel_id}>"
    return code(channel_id or "?")


def guard(text: str) -> str:
    """Neutralize every `<` and `>` that is not part of a user mention or a channel link.

    Idempotent on escaped text (it holds no raw `<` or `>`), so it can run on every text that
    goes to Slack, already escaped or not."""
    if "<" not in text and ">" not in text:
        return text
    out = []
    position = 0
    for match in _ALLOWED_CONTROL.finditer(text):
        out.append(text[position : match.start()].replace("<", "&lt;").replace(">", "&gt;"))
        out.append(match.group(0))
        position = match.end()
    out.append(text[position:].replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(out)


def guard_blocks(value: Any) -> Any:
    """`guard` applied to every mrkdwn text object inside blocks (sections, fields, context
    elements, confirmation dialogs), recursively; plain_text is left alone."""
    if isinstance(value, list):
        return [guard_blocks(item) for item in value]
    if isinstance(value, dict):
        if value.get("type") == _MRKDWN and isinstance(value.get("text"), str):
            return {**value, "text": guard(value["text"])}
        return {key: guard_blocks(item) for key, item in value.items()}
    return value
