"""How people appear in Slack messages. Handlers name them by raw id (a Slack user id, or
user@host for the CLI); only the Slack side turns Slack ids into mentions."""

from __future__ import annotations

from bot.render.mrkdwn import code, escape
from bot.render.mrkdwn import mention as mention
from handlers.mutation_lock import AlreadyDone, Busy


def who(user: str, source: str) -> str:
    """A person as a handler recorded them: Slack users as mentions, the rest as code."""
    return mention(user) if source == "slack" else code(user)


def recorded_user(user: str) -> str:
    """A user a backup recorded without its source: Slack ids look like U… or W…."""
    return mention(user) if user[:1] in ("U", "W") and "@" not in user else code(user)


def error_text(exc: Exception) -> str:
    """A handler's one-line error as mrkdwn: escaped, people named the Slack way.

    Busy and AlreadyDone name people inside text read from records on disk; the text is
    escaped with placeholders standing for the people, which become mentions afterwards."""
    if isinstance(exc, Busy | AlreadyDone):
        people: list[str] = []

        def placeholder(user: str, source: str) -> str:
            people.append(who(user, source))
            return f"\x00{len(people) - 1}\x00"

        text = escape(exc.describe(placeholder))
        for index, person in enumerate(people):
            text = text.replace(f"\x00{index}\x00", person)
        return text
    return escape(str(exc))
