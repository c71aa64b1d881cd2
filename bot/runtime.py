"""The dispatcher: from a Slack request to an authorized, audited job on the bot's executor.

The `on_*` methods run in the ack path (Slack waits for them, 3 s at most): they only parse,
check what can be checked without I/O, and queue. Everything slow runs in `_job` on the executor.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bot.audit import Auditor, EchoQueue, describe
from bot.auth import Authorizer, Decision
from bot.context import SlackContext, scrub
from bot.executor import BoundedExecutor
from bot.health import EngineStatus, Probe, engine_probe
from bot.hosts import BotHosts, split_host
from bot.parsing import split, strip_mention
from bot.render.help import render_help, render_unknown, render_usage
from bot.render.hosts import host_problem
from bot.render.mrkdwn import escape, guard, guard_blocks
from bot.render.people import error_text
from bot.singleflight import SharedRun
from bot.subcommands import (
    ACTION_PREFIX,
    Action,
    Click,
    Invocation,
    Registry,
    Subcommand,
    UsageError,
    load_registry,
)
from config.i18n import gettext as _
from config.settings import Settings
from handlers.results import HandlerError, Report
from handlers.secret_set import shared as shared_secrets

log = logging.getLogger(__name__)

CheckFn = Callable[[Settings], Report]


def busy_text() -> str:
    return ":hourglass: " + _("The bot is busy with other requests; try again in a minute.")


def generic_error(command: str, rid: str) -> str:
    return ":x: " + _(
        "Something went wrong while running `{command}` (error id `{rid}`). "
        "The details are in the bot's log under that id."
    ).format(command=command, rid=rid)


def handler_error(command: str, message: str, rid: str) -> str:
    """`message` is mrkdwn already (error_text)."""
    return ":x: " + _("`{command}` failed: {message} (error id `{rid}`)").format(
        command=command, message=message, rid=rid
    )


class CachedCheck:
    """The real check, keeping what it may between runs (handlers/engine_cache.py) while the
    engine's event stream is connected; the stream is opened now, in the background."""

    def __init__(self, settings: Settings) -> None:
        from handlers.engine_cache import EngineCache  # lazy: pulls in docker-py

        self.cache = EngineCache(settings).start()

    def __call__(self, settings: Settings) -> Report:
        from handlers.check import run_check

        return run_check(settings, cache=self.cache)

    def close(self) -> None:
        self.cache.close()


def new_request_id() -> str:
    return secrets.token_hex(3)


class _Seen:
    """Recently seen delivery keys: Slack retries events, users double-click buttons."""

    def __init__(self, ttl: float = 600.0, size: int = 2048) -> None:
        self._ttl, self._size = ttl, size
        self._items: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._items and (
                len(self._items) >= self._size or next(iter(self._items.values())) < now - self._ttl
            ):
                self._items.popitem(last=False)
            if key in self._items:
                return False
            self._items[key] = now
            return True


@dataclass(frozen=True)
class Request:
    """A slash command or an app mention, as far as the dispatcher needs it."""

    source: Literal["command", "mention"]
    text: str  # after the command or the bot's mention
    user: str
    channel: str
    channel_name: str | None = None  # slash commands only
    thread_ts: str | None = None  # mentions: where to answer
    response_url: str | None = None  # slash commands only
    team_id: str | None = None

    @property
    def help_command(self) -> str:
        return "/dify-ollama help" if self.source == "command" else "@dify-ollama help"


@dataclass(frozen=True)
class Reply:
    """An answer to the requester alone, given in the ack path."""

    text: str
    blocks: list[dict[str, Any]] | None = None
    busy: bool = False  # the executor refused the job


class Runtime:
    def __init__(
        self,
        settings: Settings,
        client: Any,
        *,
        registry: Registry | None = None,
        check: CheckFn | None = None,
        probe: Probe | None = None,
        max_pending: int = 200,
    ) -> None:
        self.settings = settings
        self.client = client
        self.registry = registry or load_registry()
        self.executor = BoundedExecutor(settings.worker_threads, max_pending=max_pending)
        self.authorizer = Authorizer(settings.allowed_channels, settings.operators, client)
        # HOSTS_FILE: `@host` routing and each host's own operators (bot/hosts.py).
        self.hosts = BotHosts(settings, client, self.authorizer)
        # Arguments are audited with the host's whole secret set (Dify's .env, its containers'
        # environments, the bot's tokens), kept fresh as .env changes.
        self.secrets = shared_secrets(settings)
        self.echo = EchoQueue(self._post_audit) if settings.audit_channel else None
        self.auditor = Auditor(
            settings.audit_path,
            echo=self.echo.submit if self.echo is not None else None,
            redact=self.secrets.redact,
        )
        self.cached_check: CachedCheck | None = None
        if check is None:
            check = self.cached_check = CachedCheck(settings)
        check_fn = check
        self.checks: SharedRun[Report] = SharedRun(lambda: check_fn(settings))
        self.engine = EngineStatus(probe or engine_probe(settings))
        self._seen = _Seen()

    def shutdown(self, wait: bool = True) -> None:
        self.executor.shutdown(wait=wait)
        if self.echo is not None:
            self.echo.close(timeout=5.0 if wait else 0.5)
        if self.cached_check is not None:
            self.cached_check.close()
        self.hosts.close()

    # --- ack path: slash commands and mentions ----------------------------------------------
    def on_command(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Handle a slash command payload; return the ack body (None: empty ack)."""
        request = Request(
            source="command",
            text=str(body.get("text", "")),
            user=str(body.get("user_id", "")),
            channel=str(body.get("channel_id", "")),
            channel_name=body.get("channel_name"),
            response_url=body.get("response_url"),
            team_id=body.get("team_id"),
        )
        reply = self._dispatch(request, time.monotonic(), new_request_id())
        if reply is None:
            return None
        # Answers quote what was typed (an unknown name, a bad argument): no secret of the
        # host may come back in them either.
        redact = self.secrets.redact
        answer: dict[str, Any] = {"text": guard(redact(reply.text))}
        if reply.blocks is not None:
            answer["blocks"] = guard_blocks(scrub(reply.blocks, redact))
        return answer

    def on_mention(self, event: dict[str, Any], event_id: str | None = None) -> None:
        if event_id and not self._seen.first_time(f"event:{event_id}"):
            return  # Slack's retry of a delivery we already took
        received = time.monotonic()
        rid = new_request_id()
        request = Request(
            source="mention",
            text=strip_mention(str(event.get("text", ""))),
            user=str(event.get("user", "")),
            channel=str(event.get("channel", "")),
            # In a thread: answer there. At the top level: open a thread under the mention.
            thread_ts=event.get("thread_ts") or event.get("ts"),
            team_id=event.get("team"),
        )
        reply = self._dispatch(request, received, rid)
        if reply is None:
            return
        ctx = SlackContext(
            self,
            user_id=request.user,
            channel_id=request.channel,
            thread_ts=request.thread_ts,
            request_id=rid,
            received_at=received,
            source="mention",
        )
        if reply.busy:
            self._safe(ctx.ephemeral, reply.text)  # rare; a direct call beats dropping it
        else:
            self.executor.submit(self._safe, ctx.ephemeral, reply.text, reply.blocks)

    def _dispatch(self, request: Request, received: float, rid: str) -> Reply | None:
        """Parse, answer help/unknown/usage, authorize what needs no lookup, and queue the
        subcommand on the executor: the ack path of commands and mentions alike. Returns what
        to tell the requester now (None: queued, the subcommand answers)."""
        base = {
            "request_id": rid,
            "user": request.user,
            "channel": request.channel,
            "source": request.source,
        }
        words: tuple[str, ...] | None
        try:
            words, problem = split(request.text), ""
        except UsageError as exc:
            words, problem = None, str(exc)
        if words:
            name, args = words[0].lower(), words[1:]
        else:  # no text means help; text that does not parse has no name
            name, args = ("help" if words is not None else "?"), ()
        # The channel rule comes before everything, help and usage included: outside
        # ALLOWED_CHANNELS the bot says nothing about itself or the engine.
        channel_rule = self.authorizer.channel_decision(request.channel, request.channel_name)
        if not channel_rule.allowed:
            self._audit(base, name, args, "denied", received)
            return Reply(f":no_entry: {channel_rule.reason}")
        if words is None:
            self._audit(base, name, args, "usage", received)
            return Reply(
                ":warning: "
                + _("{problem}. Try `{help}`.").format(
                    problem=escape(problem), help=request.help_command
                )
            )
        if name in ("help", "-h", "--help"):
            self._audit(base, "help", args, "ok", received)
            return Reply(*render_help(self.registry, self.engine.cached()))
        sub = self.registry.subcommands.get(name)
        if sub is None:
            self._audit(base, name, args, "unknown", received)
            return Reply(render_unknown(name, self.registry))
        named, args = split_host(args) if name in self.registry.host_runs else (None, args)
        aware = name in self.registry.host_runs and self.hosts.configured
        host = named or (self.hosts.hosts.default if aware else None)
        if host is not None:
            base["host"] = host
        refusal = host_problem(self.hosts.hosts, name, named)
        if refusal is not None:
            self._audit(base, name, args, "usage", received)
            return Reply(refusal)
        try:
            options = sub.parse(args) if sub.parse else None
        except UsageError as exc:
            self._audit(base, name, args, "usage", received)
            return Reply(render_usage(sub, str(exc)))
        authorizer = self.hosts.authorizer(host)
        decision = self._quick_decision(
            sub.mutating, request.user, request.channel, request.channel_name, authorizer
        )
        if decision is not None and not decision.allowed:
            self._audit(base, name, args, "denied", received)
            return Reply(f":no_entry: {decision.reason}")
        invocation = Invocation(
            name=name,
            args=args,
            user_id=request.user,
            channel_id=request.channel,
            source=request.source,
            thread_ts=request.thread_ts,
            response_url=request.response_url,
            team_id=request.team_id,
            request_id=rid,
            received_at=received,
            options=options,
            host=host if self.hosts.remote(host) else None,
        )
        if self.executor.submit(self._job, invocation, sub, decision is None, authorizer) is None:
            self._audit(base, name, args, "busy", received)
            return Reply(busy_text(), busy=True)
        return None

    # --- ack path: buttons ----------------------------------------------------------------
    def on_action(self, body: dict[str, Any], action: dict[str, Any]) -> None:
        received = time.monotonic()
        rid = new_request_id()
        user = str((body.get("user") or {}).get("id", ""))
        container = body.get("container") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id", ""))
        message = body.get("message") or {}
        message_ts = message.get("ts") or container.get("message_ts")
        thread_ts = message.get("thread_ts") or container.get("thread_ts") or message_ts
        action_id = str(action.get("action_id", ""))
        raw_value = action.get("value")
        base = {"request_id": rid, "user": user, "channel": channel, "source": "action"}
        command = action_id.removeprefix(ACTION_PREFIX)
        audit_args = (raw_value[:500],) if isinstance(raw_value, str) else ()
        ctx = SlackContext(
            self,
            user_id=user,
            channel_id=channel,
            thread_ts=thread_ts,
            response_url=body.get("response_url"),
            request_id=rid,
            received_at=received,
            source="action",
            ephemeral_ts=message_ts if container.get("is_ephemeral") else None,
        )
        key = f"action:{user}:{action_id}:{action.get('action_ts')}:{message_ts}"
        if not self._seen.first_time(key):
            return
        handler = self.registry.actions.get(action_id)
        if handler is None:
            self._audit(base, command, audit_args, "unknown", received)
            self.executor.submit(
                self._safe,
                ctx.ephemeral,
                _("This button is not handled by this version of the bot."),
            )
            return
        command = handler.command or command
        try:
            value = json.loads(raw_value) if isinstance(raw_value, str) else raw_value
        except ValueError:
            value = raw_value
        # A button that carries a host is authorized for that host (its own operators).
        host = value.get("host") if isinstance(value, dict) else None
        if isinstance(host, str):
            base["host"] = host
        authorizer = self.hosts.authorizer(host if isinstance(host, str) else None)
        decision = self._quick_decision(handler.mutating, user, channel, None, authorizer)
        if decision is not None and not decision.allowed:
            self._audit(base, command, audit_args, "denied", received)
            self.executor.submit(self._safe, ctx.ephemeral, f":no_entry: {decision.reason}")
            return
        click = Click(
            action_id=action_id,
            value=value,
            user_id=user,
            channel_id=channel,
            message_ts=message_ts,
            thread_ts=thread_ts,
            response_url=body.get("response_url"),
            trigger_id=body.get("trigger_id"),
            request_id=rid,
            received_at=received,
        )
        job = (self._click_job, click, handler, ctx, decision is None, authorizer)
        if self.executor.submit(*job) is None:
            self._audit(base, command, audit_args, "busy", received)

    # --- jobs (executor) ------------------------------------------------------------------
    def _job(
        self,
        invocation: Invocation,
        sub: Subcommand,
        needs_operator_lookup: bool,
        authorizer: Authorizer | None = None,
    ) -> None:
        ctx = SlackContext(
            self,
            user_id=invocation.user_id,
            channel_id=invocation.channel_id,
            thread_ts=invocation.thread_ts,
            response_url=invocation.response_url,
            request_id=invocation.request_id,
            received_at=invocation.received_at,
            source=invocation.source,
        )
        base = {
            "request_id": invocation.request_id,
            "user": invocation.user_id,
            "channel": invocation.channel_id,
            "source": invocation.source,
        }
        run = sub.run
        if invocation.host is not None:
            base["host"] = invocation.host
            run = self.registry.host_runs.get(sub.name, sub.run)
        outcome = "error"
        try:
            outcome = self._guarded(
                ctx,
                invocation.user_id,
                sub.name,
                invocation.request_id,
                needs_operator_lookup,
                lambda: run(invocation, ctx),
                usage=lambda message: render_usage(sub, message),
                authorizer=authorizer,
            )
        finally:
            self._audit(base, sub.name, invocation.args, outcome, invocation.received_at)

    def _click_job(
        self,
        click: Click,
        action: Action,
        ctx: SlackContext,
        needs_operator_lookup: bool,
        authorizer: Authorizer | None = None,
    ) -> None:
        command = action.command or click.action_id.removeprefix(ACTION_PREFIX)
        base = {
            "request_id": click.request_id,
            "user": click.user_id,
            "channel": click.channel_id,
            "source": "action",
        }
        host = click.value.get("host") if isinstance(click.value, dict) else None
        if isinstance(host, str):
            base["host"] = host
        raw = json.dumps(click.value, separators=(",", ":"))[:500]
        outcome = "error"
        try:
            outcome = self._guarded(
                ctx,
                click.user_id,
                command,
                click.request_id,
                needs_operator_lookup,
                lambda: action.run(click, ctx),
                authorizer=authorizer,
            )
        finally:
            self._audit(base, command, (raw,), outcome, click.received_at)

    def _guarded(
        self,
        ctx: SlackContext,
        user_id: str,
        name: str,
        rid: str,
        needs_operator_lookup: bool,
        call: Callable[[], str | None],
        usage: Callable[[str], str] | None = None,
        authorizer: Authorizer | None = None,
    ) -> str:
        """Authorize (when a user-group lookup was left for the executor), run, and turn every
        failure into a reply; returns the audit outcome."""
        try:
            if needs_operator_lookup:
                decision = (authorizer or self.authorizer).operator_decision(user_id)
                if not decision.allowed:
                    ctx.ephemeral(f":no_entry: {decision.reason}")
                    return "denied"
            return call() or "ok"
        except UsageError as exc:
            if usage is not None:
                self._safe(ctx.ephemeral, usage(str(exc)))
                return "usage"
            log.exception("request %s (%s) crashed", rid, name)
            self._report_failure(ctx, generic_error(name, rid))
        except HandlerError as exc:
            self._report_failure(ctx, handler_error(name, error_text(exc), rid))
            log.warning("request %s (%s) failed: %s", rid, name, exc)
        except Exception:
            log.exception("request %s (%s) crashed", rid, name)
            self._report_failure(ctx, generic_error(name, rid))
        return "error"

    # --- helpers --------------------------------------------------------------------------
    def _quick_decision(
        self,
        mutating: bool,
        user: str,
        channel: str,
        channel_name: str | None,
        authorizer: Authorizer | None = None,
    ) -> Decision | None:
        """Allowed/denied when no Web API call is needed; None: a user-group lookup remains.
        `authorizer`: the host's (its own operators), else the bot's."""
        channel_rule = self.authorizer.channel_decision(channel, channel_name)
        if not channel_rule.allowed or not mutating:
            return channel_rule
        return (authorizer or self.authorizer).operator_decision_without_lookup(user)

    def _report_failure(self, ctx: SlackContext, text: str) -> None:
        note = self.engine.cached()
        if note:
            text += f"\n:warning: Docker engine unreachable: {escape(note)}"
        progress = ctx.last_progress
        try:
            if progress is not None and progress.ts is not None:
                progress.update(text)
            else:
                ctx.reply(text)
            return
        except Exception as exc:  # fall back to the requester only
            log.warning("request %s: failure reply failed (%s)", ctx.request_id, exc)
        self._safe(ctx.ephemeral, text)

    def _safe(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a reply that cannot be sent is only logged
            log.warning("reply failed: %s", exc)

    def _audit(
        self,
        base: dict[str, Any],
        command: str,
        args: tuple[str, ...] | list[str],
        outcome: str,
        received: float,
    ) -> None:
        self.auditor.write(
            **base,
            command=command,
            args=list(args),
            outcome=outcome,
            duration_ms=int((time.monotonic() - received) * 1000) if received else 0,
        )

    def _post_audit(self, line: dict[str, Any]) -> None:
        """One audit line into AUDIT_CHANNEL (on the echo queue's thread)."""
        self.client.chat_postMessage(
            channel=self.settings.audit_channel, text=guard(describe(line)), unfurl_links=False
        )
