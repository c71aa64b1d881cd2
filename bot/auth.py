"""Who may do what: ALLOWED_CHANNELS for every request, OPERATORS for mutating ones.

OPERATORS holds user ids (U..., W...) and user-group ids (S...). Group members come from
usergroups.users.list (scope usergroups:read), cached for `ttl` seconds; a lookup failure
denies (fail closed) unless a recent answer is cached.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from config.i18n import gettext as _

log = logging.getLogger(__name__)


def how_to_operators() -> str:
    return _(
        "Set OPERATORS to Slack user ids and/or user-group ids (e.g. "
        "`OPERATORS=U012AB3CD,S0614TZR7`) in the bot's environment and restart it."
    )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""  # the user-facing explanation when not allowed


def _is_group(entry: str) -> bool:
    return entry.startswith("S")


class Authorizer:
    def __init__(
        self,
        allowed_channels: Iterable[str],
        operators: Iterable[str],
        client: Any,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed_channels = frozenset(c.lstrip("#") for c in allowed_channels)
        self.operators = tuple(operators)
        self._users = frozenset(o for o in self.operators if not _is_group(o))
        self._groups = tuple(o for o in self.operators if _is_group(o))
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def channel_allowed(self, channel_id: str, channel_name: str | None = None) -> bool:
        if not self.allowed_channels:
            return True
        return channel_id in self.allowed_channels or (
            channel_name is not None and channel_name in self.allowed_channels
        )

    def channel_decision(self, channel_id: str, channel_name: str | None = None) -> Decision:
        if self.channel_allowed(channel_id, channel_name):
            return Decision(True)
        return Decision(
            False,
            _(
                "This bot does not take commands in this channel (ALLOWED_CHANNELS). "
                "Ask in one of the incident channels it serves."
            ),
        )

    def operator_decision_without_lookup(self, user_id: str) -> Decision | None:
        """The decision when it needs no Web API call, else None (a group lookup is needed)."""
        if not self.operators:
            return Decision(
                False,
                _("Nobody may run changing commands yet. {how}").format(how=how_to_operators()),
            )
        if user_id in self._users:
            return Decision(True)
        if not self._groups:
            return Decision(False, self._not_operator())
        return None

    def operator_decision(self, user_id: str) -> Decision:
        quick = self.operator_decision_without_lookup(user_id)
        if quick is not None:
            return quick
        for group in self._groups:
            if user_id in self._members(group):
                return Decision(True)
        return Decision(False, self._not_operator())

    def is_operator(self, user_id: str) -> bool:
        return self.operator_decision(user_id).allowed

    def _not_operator(self) -> str:
        return _(
            "Only operators may run changing commands (OPERATORS). "
            "Ask an operator, or an admin to add you."
        )

    def _members(self, group: str) -> frozenset[str]:
        now = self._clock()
        with self._lock:  # one lookup at a time: a burst of clicks makes one API call
            cached = self._cache.get(group)
            if cached is not None and cached[0] > now:
                return cached[1]
            try:
                response = self._client.usergroups_users_list(usergroup=group)
                members = frozenset(response.get("users") or ())
            except Exception as exc:  # any API/network failure: fail closed
                log.warning("usergroups.users.list %s failed: %s", group, exc)
                # A recent answer (within 10 x ttl) beats refusing every operator during an outage.
                if cached is not None and cached[0] + 9 * self._ttl > now:
                    return cached[1]
                return frozenset()
            self._cache[group] = (now + self._ttl, members)
            return members
