"""Socket Mode's /healthz: a small HTTP server on HEALTH_HOST:HEALTH_PORT (HTTP mode answers
/healthz on its own port, see bot/server/http.py).

The standard library's ThreadingHTTPServer is enough: one GET at a time from a supervisor, a
JSON body, no Slack traffic. It runs in a daemon thread and stops with `close()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bot.health_report import HEALTH_PATH, Health, body

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(self, host: str, port: int, health: Callable[[], Health]) -> None:
        """Binds now (OSError when the port is taken: the caller says so and exits)."""

        class Handler(BaseHTTPRequestHandler):
            server_version = "dify-ollama-bot"
            sys_version = ""

            def do_GET(self) -> None:
                self._answer(with_body=True)

            def do_HEAD(self) -> None:
                self._answer(with_body=False)

            def _answer(self, with_body: bool) -> None:
                if self.path.split("?", 1)[0] != HEALTH_PATH:
                    self.send_error(404)
                    return
                try:
                    state = health()
                    code, payload = state.status_code, body(state)
                except Exception:  # a bug in gathering must read as unhealthy, not hang
                    log.exception("/healthz failed")
                    code, payload = 500, b'{"status": "fail", "detail": "health check failed"}\n'
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if with_body:
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("healthz %s", format % args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="healthz", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
