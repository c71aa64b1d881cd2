"""Socket Mode: slack_sdk's builtin client, tuned to notice a dead connection quickly.

Why the builtin client: it needs no extra package, and it is the one that checks pongs: every
`ping_interval` seconds it sends a ping and drops a connection whose last pong is older than
4 x ping_interval, then reconnects (a fresh apps.connections.open). bolt's default interval is
10 s, which takes 40-60 s to notice a connection that died without a close frame; at 2 s it
takes 9-11 s. The websocket-client adapter in slack_sdk never sets a pong timeout (it would
hang on a silent peer until TCP gives up) and the websockets/aiohttp ones need an asyncio app.
Slack's `disconnect` message (sent before it rotates a connection) makes the client reconnect
at once in every variant.
"""

from __future__ import annotations

import logging
import threading

from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.app import Bot

log = logging.getLogger(__name__)

PING_INTERVAL = 2.0


def make_handler(
    bot: Bot, app_token: str, ping_interval: float = PING_INTERVAL
) -> SocketModeHandler:
    return SocketModeHandler(
        app=bot.app,
        app_token=app_token,
        logger=logging.getLogger("bot.socket_mode"),
        ping_interval=ping_interval,
        # Only ack-path work runs here; the bot's own executor does the rest.
        concurrency=4,
    )


def serve_socket_mode(
    bot: Bot, app_token: str, stop: threading.Event, ping_interval: float = PING_INTERVAL
) -> None:
    """Connect and block until `stop` is set (SIGTERM/SIGINT in `dify-ollama serve`)."""
    handler = make_handler(bot, app_token, ping_interval)
    handler.connect()  # raises SlackApiError when apps.connections.open refuses the token
    log.info("Socket Mode connected (ping every %.0f s)", ping_interval)
    try:
        stop.wait()
    finally:
        handler.close()
