"""The extension point of the Slack app: subcommands, buttons and report buttons plug in here.

A subcommand module `bot/subcommands/<name>.py` exposes `register(registry: Registry) -> None`
and calls `registry.add_subcommand(...)` (and `add_action(...)` / `add_finding_button(...)` for
buttons); `load_registry` finds every module of this package, nothing lists them. The
dispatcher in bot/runtime.py never changes when a subcommand is added: it parses the text,
authorizes, acks, audits and runs `Subcommand.run(invocation, ctx)` on the bot's own bounded
executor. docs/bot-extension.md is the guide; this file is the contract.
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from config.i18n import gettext as _

if TYPE_CHECKING:
    from config.settings import Settings
    from handlers.results import Finding, Report
    from handlers.transport import Transport

log = logging.getLogger(__name__)

# Every button this app renders has an action_id starting with this prefix; one bolt listener
# routes all of them through the registry (bot/listeners/actions.py).
ACTION_PREFIX = "dify-ollama:"

Source = Literal["command", "mention", "action"]


class UsageError(Exception):
    """Bad arguments. The user gets the message plus the subcommand's usage, ephemerally.

    The message is Slack mrkdwn: put what the user typed in it through
    `bot.render.mrkdwn.code` or `escape`, never raw."""


@dataclass(frozen=True)
class Invocation:
    """One request to run a subcommand, whatever the way it came in (slash command, mention)."""

    name: str  # subcommand name, e.g. "logs"
    args: tuple[str, ...]  # arguments after the name, split like a shell would (never run by one)
    user_id: str
    channel_id: str
    source: Source
    # Set when the request came from inside a thread (app mention in a thread): answer there.
    thread_ts: str | None = None
    response_url: str | None = None  # slash commands only; valid 30 min, 5 uses, returns no ts
    team_id: str | None = None
    request_id: str = ""  # short id, also the "error id" shown to users when something fails
    received_at: float = 0.0  # time.monotonic() at arrival (used by single-flight sharing)
    options: Any = None  # whatever Subcommand.parse returned (None without a parser)
    # `@host` (HOSTS_FILE): the host the request goes to through a transport (`all`: every
    # host); None: this machine, the local code path.
    host: str | None = None

    @property
    def user_mention(self) -> str:
        return f"<@{self.user_id}>"


@dataclass(frozen=True)
class Click:
    """One button click, already re-authorized for the clicking user."""

    action_id: str  # full id, ACTION_PREFIX included
    value: Any  # decoded from the button's JSON value (see `button()`)
    user_id: str
    channel_id: str
    message_ts: str | None  # the message that carries the button
    thread_ts: str | None  # that message's thread (its own ts when it is a thread parent)
    response_url: str | None = None
    trigger_id: str | None = None
    request_id: str = ""
    received_at: float = 0.0

    @property
    def user_mention(self) -> str:
        return f"<@{self.user_id}>"


class Progress(Protocol):
    """A message posted once and then edited in place (chat.update; when replies are
    ephemeral, replaced through the command's response_url where Slack allows it)."""

    ts: str | None  # None when replies are ephemeral

    def update(
        self, text: str, blocks: Sequence[dict[str, Any]] | None = None, transient: bool = False
    ) -> None:
        """`transient`: a progress line the next update replaces; it may be dropped where
        Slack limits the messages (ephemeral replies), an outcome (the default) never is."""
        ...


class Context(Protocol):
    """What a subcommand or button handler may do. All calls are synchronous Web API calls."""

    @property
    def settings(self) -> Settings: ...

    @property
    def client(self) -> Any:
        """The slack_sdk WebClient: an escape hatch; prefer the helpers below."""
        ...

    @property
    def registry(self) -> Registry: ...

    def reply(self, text: str, blocks: Sequence[dict[str, Any]] | None = None) -> str | None:
        """The command's answer: chat.postMessage into the request's channel (and thread, when
        there is one) so the team sees it, or ephemeral when REPLY_EPHEMERAL is set (returns None).
        Returns the message ts otherwise."""
        ...

    def post(
        self,
        channel: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> str:
        """Always a real channel message (chat.postMessage); returns its ts (for threads)."""
        ...

    def update(
        self,
        channel: str,
        ts: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        transient: bool = False,
    ) -> None:
        """chat.update of a message this bot posted; the clicked message, when it is
        ephemeral, is replaced through the click's response_url instead. `transient`: see
        Progress.update."""
        ...

    def ephemeral(self, text: str, blocks: Sequence[dict[str, Any]] | None = None) -> None:
        """Only the requesting user sees it (response_url when there is one, else
        chat.postEphemeral, in the request's thread when there is one)."""
        ...

    def upload_text(
        self,
        channel: str,
        thread_ts: str | None,
        filename: str,
        content: str,
        title: str | None = None,
        comment: str | None = None,
    ) -> None:
        """A text snippet via files_upload_v2 (needs files:write and channel membership)."""
        ...

    def progress(self, text: str) -> Progress:
        """Post a progress line now (in the request's thread when there is one); edit it later."""
        ...

    def audit(self, event: str, **fields: Any) -> None:
        """An extra audit line (the dispatcher already writes one per command and click)."""
        ...

    def check(self) -> Report:
        """A check report, shared with any `check` already running (single flight)."""
        ...

    def is_operator(self, user_id: str) -> bool:
        """OPERATORS membership (user ids and user-group ids), cached briefly."""
        ...

    def engine_note(self) -> str | None:
        """One line when the Docker engine was unreachable at the last probe, else None."""
        ...

    def transport(self, host: str) -> Transport:
        """The way to a host of HOSTS_FILE (bot/hosts.py); KeyError for an unknown name."""
        ...

    def host_names(self) -> tuple[str, ...]:
        """Every host of HOSTS_FILE, in the file's order."""
        ...


RunFn = Callable[[Invocation, Context], "str | None"]
ClickFn = Callable[[Click, Context], "str | None"]
ParseFn = Callable[[tuple[str, ...]], Any]
FindingButtonFn = Callable[["Finding", "Report"], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Subcommand:
    """`/dify-ollama <name> ...`, `@dify-ollama <name> ...` and (if `cli` wants) the terminal.

    `run` executes on the bot's executor after the request was acked and authorized. It may
    return a short outcome word for the audit line ("ok" when it returns None); raising
    `UsageError` gives the user the usage, `handlers.results.HandlerError` a friendly one-line
    error, anything else a generic error with an error id (details only in the log).
    `parse` (optional) runs in the ack path: it must be fast and pure (no I/O). It validates
    the arguments and returns any object, handed to `run` as `invocation.options`; raising
    `UsageError` there answers at once, before anything is queued.
    `mutating` subcommands are allowed to OPERATORS only; read-only ones follow ALLOWED_CHANNELS.
    """

    name: str
    usage: str  # e.g. "logs [SERVICE] [LINES] [--since 10m] [--grep TEXT]"
    summary: str  # one line for help
    mutating: bool
    run: RunFn
    parse: ParseFn | None = None
    hidden: bool = False  # not listed by help


@dataclass(frozen=True)
class Action:
    """A button handler. `action_id` must start with ACTION_PREFIX. Every click is authorized
    again (channel rule, and OPERATORS when `mutating`) before `run` executes on the executor."""

    action_id: str
    mutating: bool
    run: ClickFn
    # Audit name, e.g. "fix-env:apply"; defaults to the action_id without the prefix.
    command: str = ""


@dataclass
class Registry:
    subcommands: dict[str, Subcommand] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    finding_buttons: list[FindingButtonFn] = field(default_factory=list)
    # `@host` (HOSTS_FILE): how a subcommand runs on another host (bot/subcommands/hosts.py);
    # a subcommand without one takes no `@host`.
    host_runs: dict[str, RunFn] = field(default_factory=dict)

    def add_subcommand(self, subcommand: Subcommand) -> None:
        if subcommand.name in self.subcommands:
            raise ValueError(f"subcommand {subcommand.name!r} registered twice")
        self.subcommands[subcommand.name] = subcommand

    def add_action(self, action: Action) -> None:
        if not action.action_id.startswith(ACTION_PREFIX):
            raise ValueError(f"action_id must start with {ACTION_PREFIX!r}: {action.action_id}")
        if action.action_id in self.actions:
            raise ValueError(f"action {action.action_id!r} registered twice")
        self.actions[action.action_id] = action

    def add_host_run(self, name: str, run: RunFn) -> None:
        """`run(invocation, ctx)` serves `name @host` (invocation.host set)."""
        if name in self.host_runs:
            raise ValueError(f"host run for {name!r} registered twice")
        self.host_runs[name] = run

    def add_finding_button(self, make: FindingButtonFn) -> None:
        """`make(finding, report)` returns a button element (see `button()`) or None. The check
        renderer calls it for every problem finding, e.g. a "Logs" button for finding.service."""
        self.finding_buttons.append(make)


def button(
    text: str,
    action_id: str,
    value: Any = None,
    *,
    style: Literal["primary", "danger"] | None = None,
    confirm: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """A Block Kit button whose value is `value` as compact JSON (<= 2000 chars, Slack's limit).

    Put everything the click needs in `value` (service name, plan id ...): the click arrives
    with `Click.value` decoded. Never put secrets in it: the value travels through Slack.
    `confirm` = (title, text, confirm-button label) adds Slack's confirmation dialog.
    """
    if not action_id.startswith(ACTION_PREFIX):
        raise ValueError(f"action_id must start with {ACTION_PREFIX!r}")
    encoded = json.dumps(value, separators=(",", ":"))
    if len(encoded) > 2000:
        raise ValueError("button value exceeds Slack's 2000 characters")
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text[:75], "emoji": True},
        "action_id": action_id,
        "value": encoded,
    }
    if style:
        element["style"] = style
    if confirm:
        title, body, ok = confirm
        element["confirm"] = {
            "title": {"type": "plain_text", "text": title[:100]},
            "text": {"type": "mrkdwn", "text": body[:300]},
            "confirm": {"type": "plain_text", "text": ok[:30]},
            "deny": {"type": "plain_text", "text": _("Cancel")},
        }
    return element


def load_registry() -> Registry:
    """Every module in this package (bot/subcommands/*.py, in name order) registers itself.

    A module without `register(registry)`, or one that fails to import, is an error: the bot
    does not start with a subcommand silently missing.
    """
    registry = Registry()
    package = importlib.import_module(__name__)
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        full_name = f"{__name__}.{module.name}"
        register = getattr(importlib.import_module(full_name), "register", None)
        if not callable(register):
            raise ImportError(f"{full_name} has no register(registry) function")
        register(registry)
    return registry
