"""Socket Mode: slack_sdk's builtin client, tuned so a dead connection is replaced quickly.

Why the builtin client (no extra dependency): it is the one slack_sdk client that checks pongs.
Every `ping_interval` seconds it pings, and it drops a connection whose last pong is older than
4 x ping_interval, then reconnects with a fresh apps.connections.open. bolt's default interval
is 10 s, which took 40-60 s to notice a connection that died silently; at 2 s a silent peer is
replaced in ~9-12 s. The websocket-client adapter never sets a pong timeout (a silent peer hangs
it until TCP gives up), and the websockets/aiohttp adapters need an asyncio app.

One fix on top: when the peer closes TCP without a close frame (FIN), the builtin reader gets
b"" from recv() and loops on it, burning a core until the pong check fires. `_EofAwareSocket`
turns that b"" into ConnectionResetError, which the client already handles by dropping the
connection; its monitor then reconnects within one ping interval.
Slack's `disconnect` message (sent before it rotates a connection) reconnects at once.

The first connection is retried: Slack unreachable at start (a network not up yet, a proxy, an
outage: URLError from apps.connections.open, a refused WebSocket) is logged in one line and
retried with exponential backoff (1 s doubling to 60 s) until it works or the bot is stopped;
only a token Slack refuses is final (SlackApiError with an auth error: serve exits with it).
"""

from __future__ import annotations

import errno
import logging
import threading
from typing import Any

from slack_bolt.adapter.socket_mode.builtin import SocketModeHandler
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient

from bot.app import Bot

log = logging.getLogger(__name__)

PING_INTERVAL = 2.0
SOCKET_TIMEOUT = 1.0
RETRY_FIRST = 1.0
RETRY_MAX = 60.0
# apps.connections.open errors that a retry can outlive; any other error names a token or app
# setting that only a person can fix (invalid_auth, not_allowed_token_type, missing_scope...).
TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "request_timeout", "service_unavailable", "ratelimited"}
)


class _EofAwareSocket:
    """The connection's socket, except that end-of-stream raises instead of returning b""."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def recv(self, size: int, *args: Any) -> bytes:
        data: bytes = self._sock.recv(size, *args)
        if not data and size > 0:
            raise ConnectionResetError(
                errno.ECONNRESET, "Socket Mode peer closed the connection without a close frame"
            )
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class FastFailoverClient(SocketModeClient):
    def connect(self) -> None:
        super().connect()
        session = self.current_session
        sock = session.sock if session is not None else None
        if sock is not None:
            # The reader holds the receive lock for up to this timeout, and replacing a
            # connection (after `disconnect`) waits for that lock before it goes on reading:
            # the builtin 3 s would hold new commands for up to 3 s, all the time an ack may take.
            sock.settimeout(SOCKET_TIMEOUT)
        if session is not None and sock is not None and not isinstance(sock, _EofAwareSocket):
            session.sock = _EofAwareSocket(sock)  # type: ignore[assignment]


class FastFailoverHandler(SocketModeHandler):
    """bolt's builtin SocketModeHandler with FastFailoverClient underneath."""

    def __init__(self, bot: Bot, app_token: str, ping_interval: float = PING_INTERVAL) -> None:
        # Deliberately not calling SocketModeHandler.__init__: it would build (and start the
        # threads of) a second, untuned client. These three attributes are all it sets.
        self.app = bot.app
        self.app_token = app_token
        self.client = FastFailoverClient(
            app_token=app_token,
            logger=logging.getLogger("bot.socket_mode"),
            web_client=bot.app.client,
            proxy=bot.app.client.proxy,
            ping_interval=ping_interval,
            # Only ack-path work runs on these threads; the bot's own executor does the rest.
            concurrency=4,
        )
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]


def _transient(exc: SlackApiError) -> bool:
    status = getattr(exc.response, "status_code", 200) or 200
    return exc.response.get("error") in TRANSIENT_ERRORS or int(status) >= 500


def _why(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # URLError wraps the socket error
    text = str(reason if reason is not None else exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


def connect_with_retry(
    handler: SocketModeHandler,
    stop: threading.Event,
    first: float = RETRY_FIRST,
    cap: float = RETRY_MAX,
) -> bool:
    """Connect, retrying what a retry can fix; False when `stop` was set first. Raises
    SlackApiError when Slack refuses the app token (a retry cannot fix that)."""
    delay = first
    attempt = 0
    while not stop.is_set():
        attempt += 1
        try:
            # A fresh WebSocket URL each time: a ticket handed out before a failure is spent.
            handler.client.wss_uri = None
            handler.connect()
            if attempt > 1:
                log.info("Socket Mode connected after %d attempts", attempt)
            return True
        except SlackApiError as exc:
            if not _transient(exc):
                raise
            reason = f"apps.connections.open answered {exc.response.get('error')}"
        except Exception as exc:  # URLError, refused/reset sockets, timeouts, handshakes
            reason = _why(exc)
        log.warning(
            "Socket Mode: cannot reach Slack (%s); attempt %d failed, retrying in %.0f s",
            reason,
            attempt,
            delay,
        )
        if stop.wait(delay):
            return False
        delay = min(cap, delay * 2)
    return False


def serve_socket_mode(
    bot: Bot,
    app_token: str,
    stop: threading.Event,
    ping_interval: float = PING_INTERVAL,
    retry_first: float = RETRY_FIRST,
    retry_max: float = RETRY_MAX,
    handler: FastFailoverHandler | None = None,
) -> None:
    """Connect (retrying while Slack is unreachable) and block until `stop` is set
    (SIGTERM/SIGINT in `dify-ollama serve`). Raises SlackApiError when Slack refuses the app
    token. `handler`: one made beforehand, so /healthz can ask it whether it is connected."""
    handler = handler or FastFailoverHandler(bot, app_token, ping_interval)
    try:
        if connect_with_retry(handler, stop, retry_first, retry_max):
            if handler.client.is_connected():
                log.info("Socket Mode connected (ping every %.0f s)", ping_interval)
            else:  # the WebSocket itself failed: the client's monitor reconnects from here
                log.warning("Socket Mode: the first WebSocket failed; the client keeps retrying")
            stop.wait()
    finally:
        handler.close()
