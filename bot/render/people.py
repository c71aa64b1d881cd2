"""How people appear in Slack messages. Handlers name them by raw id (a Slack user id, or
user@host for the CLI); only the Slack side turns Slack ids into mentions."""

from __future__ import annotations

from handlers.mutation_lock import AlreadyDone, Busy


def mention(user_id: str) -> str:
    return f"<@{user_id}>"


def who(user: str, source: str) -> str:
    """A person as a handler recorded them: Slack users as mentions, the rest as code."""
    return mention(user) if source == "slack" else user


def recorded_user(user: str) -> str:
    """A user a backup recorded without its source: Slack ids look like U… or W…."""
    return mention(user) if user[:1] in ("U", "W") and "@" not in user else f"`{user}`"


def error_text(exc: Exception) -> str:
    """A handler's one-line error, people named the Slack way."""
    if isinstance(exc, Busy | AlreadyDone):
        return exc.describe(who)
    return str(exc)
