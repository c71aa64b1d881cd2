"""A recording Slack Web API double: a real HTTP server on loopback.

Serves what the bot calls (auth.test, chat.*, files upload v2 incl. the upload URL itself,
usergroups.users.list, apps.connections.open, response_url) and records every call for the test
to inspect. It enforces Slack's message limits the way Slack does (invalid_blocks), so a
renderer that overflows fails here as it would in production.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"
BOT_USER = "UBOT0001"


@dataclass
class Call:
    method: str  # Web API method, or "upload" / "response_url"
    params: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)
    raw: bytes = b""


def _parse(body: bytes, content_type: str) -> dict[str, Any]:
    if not body:
        return {}
    if "json" in content_type:
        data = json.loads(body)
        return data if isinstance(data, dict) else {"_": data}
    params: dict[str, Any] = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    for key in ("blocks", "files", "attachments"):
        if isinstance(params.get(key), str):
            with contextlib.suppress(ValueError):
                params[key] = json.loads(params[key])
    return params


def block_problems(blocks: Any) -> list[str]:
    """What Slack would reject in a blocks array."""
    if blocks in (None, ""):
        return []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    problems = []
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks > 50")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        text = (block.get("text") or {}).get("text", "")
        if kind == "section" and not 1 <= len(text) <= 3000:
            problems.append(f"block {i}: section text {len(text)} chars")
        if kind == "header" and not 1 <= len(text) <= 150:
            problems.append(f"block {i}: header text {len(text)} chars")
        if kind == "context" and not 1 <= len(block.get("elements", [])) <= 10:
            problems.append(f"block {i}: context elements")
        if kind == "actions":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 25:
                problems.append(f"block {i}: {len(elements)} action elements")
            for element in elements:
                if len(element.get("value", "")) > 2000 or len(element.get("action_id", "")) > 255:
                    problems.append(f"block {i}: button value/action_id too long")
    return problems


class SlackApiDouble:
    def __init__(self, port: int = 0) -> None:
        self.calls: list[Call] = []
        self.usergroups: dict[str, list[str]] = {}
        self.not_in_channel: set[str] = set()
        self.failing: dict[str, str] = {}  # method -> error to return
        self.delay: dict[str, float] = {}  # method -> seconds to wait before answering
        self.ws_url: Callable[[], str] | None = None
        self.uploads: dict[str, bytes] = {}
        self._ts = itertools.count(1)
        self._file = itertools.count(1)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, payload = double._handle(self.path, dict(self.headers), body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                ctype = "text/plain" if isinstance(payload, bytes) else "application/json"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        ThreadingHTTPServer.request_queue_size = 128  # Slack does not drop SYNs at 6 connections
        # A fixed `port` lets a test point the bot at an address that refuses connections
        # until the double starts there.
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/api/"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> SlackApiDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def response_url(self, name: str = "r1") -> str:
        return f"{self.url}/response/{name}"

    # --- inspection ----------------------------------------------------------------------
    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    c for c in self.calls if c.method == method and (where is None or where(c))
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [c.method for c in self.calls]
                    raise AssertionError(f"expected {count} x {method}, saw {seen}")
                self._cond.wait(left)

    def texts(self) -> list[str]:
        """Every text the bot sent anywhere (messages, updates, ephemerals, responses)."""
        out = []
        with self._lock:
            for call in self.calls:
                for key in ("text", "initial_comment"):
                    if isinstance(call.params.get(key), str):
                        out.append(call.params[key])
                blocks = call.params.get("blocks")
                if blocks:
                    out.append(json.dumps(blocks))
        return out

    # --- the API -------------------------------------------------------------------------
    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        ctype = headers.get("Content-Type", headers.get("content-type", ""))
        if path.startswith("/upload/"):
            file_id = path.rsplit("/", 1)[-1]
            self.uploads[file_id] = body
            self._record(Call("upload", {"file_id": file_id}, headers, raw=body))
            return 200, f"OK - {len(body)}".encode()
        if path.startswith("/response/"):
            params = _parse(body, "json")
            self._record(Call("response_url", params, headers, raw=body))
            return 200, b"ok"
        if not path.startswith("/api/"):
            return 404, {"ok": False, "error": "not_found"}
        method = path[len("/api/") :].split("?")[0]
        params = _parse(body, ctype)
        call = Call(method, params, headers, raw=body)
        if method in self.delay:
            time.sleep(self.delay[method])
        auth = headers.get("Authorization", headers.get("authorization", ""))
        token = auth.removeprefix("Bearer ")
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        self._record(call)
        if token != expected:
            return 200, {"ok": False, "error": "invalid_auth"}
        if method in self.failing:
            return 200, {"ok": False, "error": self.failing[method]}
        return 200, self._answer(method, params)

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://test.slack.com/",
                "team": "Test",
                "user": "dify-ollama",
                "team_id": "T0001",
                "user_id": BOT_USER,
                "bot_id": "B0001",
            }
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            if params.get("channel") in self.not_in_channel and method != "chat.update":
                return {"ok": False, "error": "not_in_channel"}
            problems = block_problems(params.get("blocks"))
            if problems:
                return {"ok": False, "error": "invalid_blocks", "errors": problems}
            if not params.get("text") and not params.get("blocks"):
                return {"ok": False, "error": "no_text"}
            if method == "chat.postEphemeral":
                return {"ok": True, "message_ts": f"1700000000.{next(self._ts):06d}"}
            ts = params.get("ts") or f"1700000000.{next(self._ts):06d}"
            return {"ok": True, "channel": params.get("channel"), "ts": ts}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._file):04d}"
            return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = params.get("files") or []
            if params.get("channel_id") in self.not_in_channel:
                return {"ok": False, "error": "not_in_channel"}
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        if method in ("views.publish", "views.open"):
            view = params.get("view")
            if isinstance(view, str):
                view = json.loads(view)
            blocks = (view or {}).get("blocks") or []
            limit = 100
            problems = block_problems(blocks[:50]) + ([] if len(blocks) <= limit else ["blocks"])
            if problems or not isinstance(view, dict):
                return {"ok": False, "error": "invalid_arguments", "errors": problems}
            return {"ok": True, "view": {"id": "V0001", **view}}
        if method == "usergroups.users.list":
            group = params.get("usergroup", "")
            if group not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": self.usergroups[group]}
        if method == "apps.connections.open":
            if self.ws_url is None:
                return {"ok": False, "error": "not_configured"}
            return {"ok": True, "url": self.ws_url()}
        return {"ok": False, "error": "unknown_method"}
