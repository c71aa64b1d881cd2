"""SlackContext: the helpers a subcommand or button handler gets (bot.subcommands.Context)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.render.limits import MAX_FALLBACK, fit, truncate
from handlers.results import HandlerError

if TYPE_CHECKING:
    from bot.audit import Auditor
    from bot.auth import Authorizer
    from bot.health import EngineStatus
    from bot.singleflight import SharedRun
    from bot.subcommands import Registry
    from config.settings import Settings
    from handlers.results import Report

log = logging.getLogger(__name__)

NOT_IN_CHANNEL = (
    "I am not a member of this channel, so I cannot post here: invite me with "
    "`/invite @dify-ollama` (or use me in a channel I am in)."
)


def _blocks(blocks: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    return fit(list(blocks)) if blocks else None


class Host(Protocol):
    """What a context needs from the bot that runs it (bot.runtime.Runtime is one)."""

    settings: Settings
    client: Any
    registry: Registry
    auditor: Auditor
    checks: SharedRun[Report]
    authorizer: Authorizer
    engine: EngineStatus


class SlackProgress:
    def __init__(self, ctx: SlackContext, ts: str | None) -> None:
        self._ctx = ctx
        self.ts = ts

    def update(self, text: str, blocks: Sequence[dict[str, Any]] | None = None) -> None:
        if self.ts is None:
            self._ctx.ephemeral(text, blocks)
        else:
            self._ctx.update(self._ctx.channel_id, self.ts, text, blocks)


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
    ) -> None:
        self.runtime = runtime
        self.user_id = user_id
        self.channel_id = channel_id
        self.thread_ts = thread_ts
        self.response_url = response_url
        self.request_id = request_id
        self.received_at = received_at
        self.last_progress: SlackProgress | None = None
        self.shared_check = False  # the last check() joined a run already going

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
                text=truncate(text, MAX_FALLBACK),
                blocks=_blocks(blocks),
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
    ) -> None:
        self.client.chat_update(
            channel=channel, ts=ts, text=truncate(text, MAX_FALLBACK), blocks=_blocks(blocks) or []
        )

    def reply(self, text: str, blocks: Sequence[dict[str, Any]] | None = None) -> str | None:
        if self.settings.reply_ephemeral:
            self.ephemeral(text, blocks)
            return None
        return self.post(self.channel_id, text, blocks, thread_ts=self.thread_ts)

    def ephemeral(self, text: str, blocks: Sequence[dict[str, Any]] | None = None) -> None:
        text = truncate(text, MAX_FALLBACK)
        if self.response_url:
            # Works in channels the bot is not in, and for 30 minutes after the request.
            response = WebhookClient(
                self.response_url, timeout=10, ssl=getattr(self.client, "ssl", None)
            ).send(
                text=text,
                blocks=_blocks(blocks),
                response_type="ephemeral",
                replace_original=False,
            )
            if response.status_code < 300:
                return
            log.warning("response_url answered %s; trying chat.postEphemeral", response.status_code)
        self.client.chat_postEphemeral(
            channel=self.channel_id,
            user=self.user_id,
            text=text,
            blocks=_blocks(blocks),
            thread_ts=self.thread_ts,
        )

    def progress(self, text: str) -> SlackProgress:
        ts = self.reply(text)
        self.last_progress = SlackProgress(self, ts)
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
                content=content,
                title=title or filename,
                initial_comment=comment,
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

    def check(self) -> Report:
        report, self.shared_check = self.runtime.checks.get(self.received_at or None)
        return report

    def is_operator(self, user_id: str) -> bool:
        return self.runtime.authorizer.is_operator(user_id)

    def engine_note(self) -> str | None:
        return self.runtime.engine.note()
