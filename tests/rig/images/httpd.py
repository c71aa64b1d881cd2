"""Tiny HTTP server the look-alike api and nginx containers run (python3 only, stdlib).

Usage: python3 httpd.py ROLE [VERSION]
  api -> :DIFY_PORT (5001) GET /health {"status": "ok", "version": VERSION}
  nginx -> :NGINX_PORT (80) GET /
  agent_backend -> :5050 GET /health (Dify 1.15's agent backend)
  local_sandbox -> :5004 GET /healthz (Dify 1.15's agent local sandbox)
Prints a few start-up lines like the real service, then one access line per request.
Extra lines can be injected through RIG_EXTRA_LOG (newline-separated), e.g. the incident's
connection-refused traceback, so log tests have something real to read.
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = sys.argv[1] if len(sys.argv) > 1 else "api"
VERSION = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("RIG_DIFY_VERSION", "1.13.3")

if ROLE == "api":
    PORT = int(os.environ.get("DIFY_PORT", "5001"))
    ROUTES = {
        "/health": (200, "application/json", json.dumps({"status": "ok", "version": VERSION}))
    }
    BANNER = [
        "Running migrations",
        "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.",
        "Database migration successful!",
        "[INFO] Starting gunicorn 23.0.0",
        f"[INFO] Listening at: http://0.0.0.0:{PORT}",
        "[INFO] Using worker: gevent",
    ]
elif ROLE == "agent_backend":
    PORT = 5050
    ROUTES = {"/health": (200, "application/json", '{"status": "ok"}')}
    BANNER = ["INFO:     Uvicorn running on http://0.0.0.0:5050 (Press CTRL+C to quit)"]
elif ROLE == "local_sandbox":
    PORT = 5004
    ROUTES = {"/healthz": (200, "text/plain", "ok")}
    BANNER = ["shellctl listening on :5004"]
else:
    PORT = int(os.environ.get("NGINX_PORT", "80"))
    ROUTES = {"/": (200, "text/html", "<!doctype html><title>Dify</title>")}
    BANNER = ["/docker-entrypoint.sh: Configuration complete; ready for start up"]


UNHEALTHY_FLAG = "/tmp/rig-unhealthy"  # a test touches it to make /health fail


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if ROLE == "api" and self.path.startswith("/health") and os.path.exists(UNHEALTHY_FLAG):
            self._send(500, "application/json", '{"status": "error"}')
            return
        code, ctype, body = ROUTES.get(
            self.path.split("?", 1)[0], (404, "application/json", '{"code": "not_found"}')
        )
        self._send(code, ctype, body)

    def _send(self, code, ctype, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print(
            f'{self.address_string()} - "{self.requestline}" {args[1] if len(args) > 1 else ""}',
            flush=True,
        )


def main():
    # PID 1 ignores SIGTERM unless it installs a handler: exit at once so `stop` is fast.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    for line in BANNER:
        print(line, flush=True)
    for line in os.environ.get("RIG_EXTRA_LOG", "").splitlines():
        print(line, flush=True)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()


main()
