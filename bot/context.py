"""SlackContext: the helpers a subcommand or button handler gets (bot.subcommands.Context)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.render.limits import MAX_FALLBACK, fit, truncate
from bot.render.mrkdwn import guard, guard_blocks
from handlers.results import HandlerError

if TYPE_CHECKING:
    from bot.audit import Auditor
    from bot.auth import Authorizer
    from bot.health import EngineStatus
    from bot.hosts import BotHosts
    from bot.singleflight import SharedRun
    from bot.subcommands import Registry
    from config.settings import Settings
    from handlers.results import Report
    from handlers.secret_set import HostSecrets
    from handlers.transport import Transport

log = logging.getLogger(__name__)

NOT_IN_CHANNEL = (
    "I am not a member of this channel, so I cannot post here: invite me with "
    "`/invite @dify-ollama` (or use me in a channel I am in)."
)


# Slack takes at most five messages through one response_url (within 30 minutes). Progress
# lines may use the first ones; the rest is kept for outcomes, which always get through.
RESPONSE_URL_USES = 5
TRANSIENT_URL_USES = 2


def scrub(value: Any, redact: Callable[[str], str]) -> Any:
    """Every `text` string inside blocks through `redact`."""
    if isinstance(value, list):
        return [scrub(item, redact) for item in value]
    if isinstance(value, dict):
        return {
            key: redact(item) if key == "text" and isinstance(item, str) else scrub(item, redact)
            for key, item in value.items()
        }
    return value


class Host(Protocol):
    """What a context needs from the bot that runs it (bot.runtime.Runtime is one)."""

    settings: Settings
    client: Any
    registry: Registry
    auditor: Auditor
    checks: SharedRun[Report]
    authorizer: Authorizer
    engine: EngineStatus
    secrets: HostSecrets  # the host's whole secret set, for the wire's last redaction
    hosts: BotHosts  # HOSTS_FILE


class SlackProgress:
    """A progress line. In the channel: edited with chat.update. Ephemeral: replaced through
    the slash command's response_url when it was posted there (Slack cannot chat.update an
    ephemeral message), else each update is a new ephemeral message, progress lines dropped."""

    def __init__(self, ctx: SlackContext, ts: str | None, replaceable: bool = False) -> None:
        self._ctx = ctx
        self.ts = ts
        self.replaceable = replaceable

    def update(
        self, text: str, blocks: Sequence[dict[str, Any]] | None = None, transient: bool = False
    ) -> None:
        if self.ts is not None:
            self._ctx.update(self._ctx.channel_id, self.ts, text, blocks, transient=transient)
        elif self.replaceable:
            replaced = self._ctx.respond(text, blocks, replace=True, transient=transient)
            if not replaced and not transient:
                self._ctx.ephemeral(text, blocks)
        elif not transient:
            self._ctx.ephemeral(text, blocks)


class SlackContext:
    """Bound to one request: its channel, user, thread and response_url."""

    def __init__(
        self,
        runtime: Host,
        *,
        user_id: str,
        channel_id: str,
        thread_ts: str | None = None,
        response_url: str | None = None,
        request_id: str = "",
        received_at: float = 0.0,
        source: str = "command",
        ephemeral_ts: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.user_id = user_id
        self.channel_id = channel_id
        self.thread_ts = thread_ts
        self.response_url = response_url
        self.request_id = request_id
        self.received_at = received_at
        # command | mention | action: what response_url's replace_original replaces differs
        # (a command's own response, the clicked message).
        self.source = source
        # The clicked message, when it is ephemeral: Slack cannot chat.update it, its
        # response_url replaces it instead.
        self.ephemeral_ts = ephemeral_ts
        self.last_progress: SlackProgress | None = None
        self.shared_check = False  # the last check() joined a run already going
        self._url_uses = 0

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def client(self) -> Any:
        return self.runtime.client

    @property
    def registry(self) -> Registry:
        return self.runtime.registry

    # --- messages -------------------------------------------------------------------------
    # Last line of defence at the wire, whatever a renderer or a handler forgot: no secret of
    # the host (the runtime's whole secret set) and no mrkdwn control sequence goes out.
    def _redact(self, text: str) -> str:
        return self.runtime.secrets.redact(text)

    def _text(self, text: str) -> str:
        return guard(self._redact(truncate(text, MAX_FALLBACK)))

    def _blocks(self, blocks: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        """Blocks as they go out: within Slack's limits, no secret, every mrkdwn text inert."""
        return guard_blocks(scrub(fit(list(blocks)), self._redact)) if blocks else None

    def post(
        self,
        channel: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> str:
        try:
            response = self.client.chat_postMessage(
                channel=channel,
                text=self._text(text),
                blocks=self._blocks(blocks),
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            if exc.response.get("error") in ("not_in_channel", "channel_not_found"):
                raise HandlerError(NOT_IN_CHANNEL) from exc
            raise
        return str(response["ts"])

    def update(
        self,
        channel: str,
        ts: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        transient: bool = False,
    ) -> None:
        if ts == self.ephemeral_ts:
            # The clicked message is ephemeral: only its response_url can replace it.
            if not self.respond(text, blocks, replace=True, transient=transient) and not transient:
                self.ephemeral(text, blocks)
            return
        self.client.chat_update(
            channel=channel, ts=ts, text=self._text(text), blocks=self._blocks(blocks) or []
        )

    def reply(self, text: str, blocks: Sequence[dict[str, Any]] | None = None) -> str | None:
        if self.settings.reply_ephemeral:
            self.ephemeral(text, blocks)
            return None
        return self.post(self.channel_id, text, blocks, thread_ts=self.thread_ts)

    def respond(
        self,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        *,
        replace: bool = False,
        transient: bool = False,
    ) -> bool:
        """An ephemeral message through the request's response_url (`replace`: instead of the
        command's own response, or of the clicked message). False when there is no URL left to
        use (none, its five uses spent, or refused); a transient one also when the uses left
        are kept for outcomes."""
        limit = TRANSIENT_URL_USES if transient else RESPONSE_URL_USES
        if not self.response_url or self._url_uses >= limit:
            return False
        self._url_uses += 1
        # Works in channels the bot is not in, and for 30 minutes after the request.
        response = WebhookClient(
            self.response_url, timeout=10, ssl=getattr(self.client, "ssl", None)
        ).send(
            text=self._text(text),
            blocks=self._blocks(blocks),
            response_type="ephemeral",
            replace_original=replace,
        )
        if response.status_code < 300:
            return True
        log.warning("response_url answered %s", response.status_code)
        return False

    def ephemeral(self, text: str, blocks: Sequence[dict[str, Any]] | None = None) -> None:
        if self.respond(text, blocks):
            return
        self.client.chat_postEphemeral(
            channel=self.channel_id,
            user=self.user_id,
            text=self._text(text),
            blocks=self._blocks(blocks),
            thread_ts=self.thread_ts,
        )

    def progress(self, text: str) -> SlackProgress:
        if self.settings.reply_ephemeral:
            # A slash command's response_url replaces the command's own response: the
            # progress line can be edited. After a click it would replace the clicked message.
            replaceable = self.source == "command" and self.respond(text)
            if not replaceable:
                self.ephemeral(text)
            self.last_progress = SlackProgress(self, None, replaceable=replaceable)
        else:
            self.last_progress = SlackProgress(self, self.reply(text))
        return self.last_progress

    def upload_text(
        self,
        channel: str,
        thread_ts: str | None,
        filename: str,
        content: str,
        title: str | None = None,
        comment: str | None = None,
    ) -> None:
        try:
            self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                filename=filename,
                content=self._redact(content),
                title=self._redact(title or filename),
                initial_comment=self._text(comment) if comment else None,
            )
        except SlackApiError as exc:
            if exc.response.get("error") in ("not_in_channel", "channel_not_found"):
                raise HandlerError(NOT_IN_CHANNEL) from exc
            raise

    # --- everything else ------------------------------------------------------------------
    def audit(self, event: str, **fields: Any) -> None:
        self.runtime.auditor.write(
            request_id=self.request_id,
            user=self.user_id,
            channel=self.channel_id,
            command=event,
            **fields,
        )

    def transport(self, host: str) -> Transport:
        return self.runtime.hosts.transport(host, self.user_id)

    def host_names(self) -> tuple[str, ...]:
        return self.runtime.hosts.hosts.names()

    def check(self) -> Report:
        report, self.shared_check = self.runtime.checks.get(self.received_at or None)
        return report

    def is_operator(self, user_id: str) -> bool:
        return self.runtime.authorizer.is_operator(user_id)

    def engine_note(self) -> str | None:
        return self.runtime.engine.note()
