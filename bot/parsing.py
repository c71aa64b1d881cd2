"""Turning the text after `/dify-ollama` (or after an @mention) into a name and arguments.

Arguments are split the way a POSIX shell would split them (shlex), and never run by one.
"""

from __future__ import annotations

import html
import re
import shlex

from bot.subcommands import UsageError
from config.i18n import gettext as _

# Leading "<@U0123ABC>" or "<@U0123ABC|name>" of an app mention.
_MENTION = re.compile(r"^\s*(?:<@[UW][A-Z0-9]+(?:\|[^>]*)?>\s*)+")
# Slack clients turn typed quotes into typographic ones; shlex only knows the ASCII ones.
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
MAX_TEXT = 2000


def strip_mention(text: str) -> str:
    return _MENTION.sub("", text, count=1)


def split(text: str) -> tuple[str, ...]:
    """Split command text into words. Raises UsageError on unbalanced quotes or absurd input."""
    if len(text) > MAX_TEXT:
        raise UsageError(
            _("the command text is longer than {most} characters").format(most=MAX_TEXT)
        )
    # Slack escapes &, < and > in command text; users mean the plain characters.
    plain = html.unescape(text).translate(_QUOTES)
    try:
        return tuple(shlex.split(plain, comments=False, posix=True))
    except ValueError as exc:  # "No closing quotation" / "No escaped character"
        raise UsageError(_("could not parse the arguments: {error}").format(error=exc)) from None
