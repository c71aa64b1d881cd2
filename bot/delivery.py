"""Slack calls that must not undo host work: reported after it, retried a bounded number of
times, logged when they still fail, never raised.

A repair changes the host first; telling Slack about it comes after. A rate limit, a Slack
outage or an edited-away message at that point is Slack's problem, not the repair's: the
change stays, the audit line is written, and the failure is in the bot's log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS = 3
BACKOFF = 0.5  # seconds before the second attempt, doubled after each
# Errors Slack answers with HTTP 200 and ok=false that go away by themselves.
TRANSIENT = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "timeout",
    }
)


def transient(exc: BaseException) -> bool:
    """Whether trying the same call again may succeed."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", 200)
        return status >= 500 or status == 429 or str(response.get("error", "")) in TRANSIENT
    return isinstance(exc, OSError | TimeoutError)  # URLError and socket errors are OSErrors


def deliver(
    what: str,
    call: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
) -> T | None:
    """`call()` until it succeeds, at most `attempts` times while its failure is transient;
    None (and a log line) when it never did. Never raises an Exception."""
    delay = backoff
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            again = attempt < attempts and transient(exc)
            log.warning(
                "Slack: %s failed (attempt %d of %d): %s%s",
                what,
                attempt,
                attempts,
                _describe(exc),
                "; retrying" if again else "; given up (the host work it reports stands)",
            )
            if not again:
                return None
            sleep(delay)
            delay *= 2
    return None


def quietly(what: str, call: Callable[[], object]) -> None:
    """One attempt, for a progress line the next one replaces: a failure is only logged."""
    try:
        call()
    except Exception as exc:
        log.info("Slack: %s failed: %s (progress only)", what, _describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack API error {exc.response.get('error', '?')!s}"
    return f"{type(exc).__name__}: {exc}"
