"""A recording Slack Web API double: a real HTTP server on loopback.

Serves what the bot calls (auth.test, chat.*, files upload v2 incl. the upload URL itself,
usergroups.users.list, apps.connections.open, response_url) and records every call for the test
to inspect. It enforces Slack's limits the way Slack does, so a renderer that overflows fails
here as it would in production: invalid_blocks (50 blocks, 3000 characters per section),
msg_blocks_too_long (the blocks' texts together), five uses per response_url, and no
chat.update of an ephemeral message.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

BOT_TOKEN = "xoxb-test-token"
MAX_BLOCKS = 50
# chat.postMessage / chat.update refuse blocks whose texts add up to more than about 12,000
# characters (msg_blocks_too_long: undocumented; slackapi/bolt-js #2509 saw it at ~13,200,
# #2867 at 11,341). The double refuses above 11,000, the lowest figure reported, rounded down.
MAX_BLOCKS_TEXT = 11_000
# A response_url takes five messages within 30 minutes.
RESPONSE_URL_USES = 5
APP_TOKEN = "xapp-test-token"
BOT_USER = "UBOT0001"
MANIFEST_SCOPES = ("commands", "chat:write", "files:write", "app_mentions:read", "usergroups:read")


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


_CONTROL = re.compile(r"<[^<>\n]{0,500}>")
_ALLOWED = re.compile(r"<(?:@[UWB][A-Z0-9]+|#[CGD][A-Z0-9]+)>")


def mrkdwn_in(value: Any) -> list[str]:
    """The texts of every mrkdwn text object inside a blocks value."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    found: list[str] = []
    if isinstance(value, list):
        for item in value:
            found += mrkdwn_in(item)
    elif isinstance(value, dict):
        if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
            found.append(value["text"])
        for item in value.values():
            if isinstance(item, dict | list):
                found += mrkdwn_in(item)
    return found


def control_sequences(text: str) -> list[str]:
    return [m for m in _CONTROL.findall(text) if not _ALLOWED.fullmatch(m)]


def text_length(value: Any) -> int:
    """The characters of every `text` string inside blocks (what Slack adds up)."""
    if isinstance(value, list):
        return sum(text_length(v) for v in value)
    if isinstance(value, dict):
        return sum(
            len(v) if k == "text" and isinstance(v, str) else text_length(v)
            for k, v in value.items()
        )
    return 0


def block_problems(blocks: Any) -> list[str]:
    """What Slack would reject in a blocks array."""
    if blocks in (None, ""):
        return []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    problems = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks > {MAX_BLOCKS}")
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
        self.bot_token, self.app_token = BOT_TOKEN, APP_TOKEN  # what the double accepts
        # What auth.test says the bot token was granted (None: no x-oauth-scopes header).
        self.scopes: list[str] | None = list(MANIFEST_SCOPES)
        self.uploads: dict[str, bytes] = {}
        # ts of ephemeral messages (chat.postEphemeral, or clicked as such): chat.update fails
        self.ephemeral_ts: set[str] = set()
        self.url_uses: dict[str, int] = {}
        self._fail_next: dict[str, list[str]] = {}
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
                if self.path.endswith("/auth.test") and double.scopes is not None:
                    # Slack names a token's scopes in this header of every Web API answer.
                    self.send_header("x-oauth-scopes", ",".join(double.scopes))
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

    def fail_next(self, method: str, error: str, times: int = 1) -> None:
        """The next `times` calls of `method` answer ok=false with `error`."""
        with self._lock:
            self._fail_next.setdefault(method, []).extend([error] * times)

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

    def mrkdwn_texts(self) -> list[str]:
        """Every text Slack would parse as mrkdwn: messages' `text`, mrkdwn text objects inside
        blocks (sections, context, confirmation dialogs), upload comments."""
        out: list[str] = []
        with self._lock:
            for call in self.calls:
                for key in ("text", "initial_comment"):
                    if isinstance(call.params.get(key), str):
                        out.append(call.params[key])
                out += mrkdwn_in(call.params.get("blocks"))
        return out

    def control_sequences(self) -> list[str]:
        """`<...>` sequences Slack would act on (broadcasts, links, mentions), except
        mentions of user ids and links to channel ids: what the bot itself writes."""
        return [m for text in self.mrkdwn_texts() for m in control_sequences(text)]

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
            call = Call("response_url", {**params, "_url": path}, headers, raw=body)
            with self._lock:
                uses = self.url_uses[path] = self.url_uses.get(path, 0) + 1
            self._record(call)
            if uses > RESPONSE_URL_USES:
                return 404, b"used_url"
            if block_problems(params.get("blocks")):
                return 400, b"invalid_blocks"
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
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        self._record(call)
        if token != expected:
            return 200, {"ok": False, "error": "invalid_auth"}
        if method in self.failing:
            return 200, {"ok": False, "error": self.failing[method]}
        with self._lock:
            queued = self._fail_next.get(method)
            error = queued.pop(0) if queued else None
        if error is not None:
            return 200, {"ok": False, "error": error}
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
            if method == "chat.update" and params.get("ts") in self.ephemeral_ts:
                return {"ok": False, "error": "message_not_found"}  # ephemerals cannot be edited
            problems = block_problems(params.get("blocks"))
            if problems:
                return {"ok": False, "error": "invalid_blocks", "errors": problems}
            if text_length(params.get("blocks")) > MAX_BLOCKS_TEXT:
                return {"ok": False, "error": "msg_blocks_too_long"}
            if not params.get("text") and not params.get("blocks"):
                return {"ok": False, "error": "no_text"}
            if method == "chat.postEphemeral":
                ts = f"1700000000.{next(self._ts):06d}"
                self.ephemeral_ts.add(ts)
                return {"ok": True, "message_ts": ts}
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
