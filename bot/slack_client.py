"""The Slack Web API client (slack_sdk only: the startup checks use it without loading bolt)."""

from __future__ import annotations

from typing import Any, Literal

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from config.settings import Settings

Mode = Literal["http", "socket"]


def secret(value: Any) -> str:
    """The plain value of an optional SecretStr ('' when unset)."""
    return value.get_secret_value().strip() if value is not None else ""


def api_base_url(settings: Settings) -> str:
    # WebClient joins method names onto base_url, which therefore must end with "/".
    url = settings.slack_api_url
    return url if url.endswith("/") else url + "/"


def make_client(settings: Settings, timeout: int = 15) -> WebClient:
    """A client for SLACK_API_URL (Slack, GovSlack, a proxy or a test double)."""
    return WebClient(
        token=secret(settings.slack_bot_token) or None,
        base_url=api_base_url(settings),
        timeout=timeout,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),
            RateLimitErrorRetryHandler(max_retry_count=2),
        ],
    )
