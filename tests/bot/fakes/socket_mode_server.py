"""A local WebSocket server speaking Slack's Socket Mode envelope protocol (RFC 6455, stdlib).

The Slack double's apps.connections.open hands out ws://127.0.0.1:<port>/link/?ticket=N; each
connection gets `hello`; the test sends envelopes (slash_commands, events_api, interactive)
and reads the acks the bot sends back by envelope_id. Faults: `disconnect` message, close
without a close frame (FIN), reset (RST), and a silent peer (stops reading and answering pings,
like a NAT box that forgot the connection).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
from typing import Any

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WsConnection:
    def __init__(self, sock: socket.socket, server: SocketModeServer, ticket: str) -> None:
        self.sock = sock
        self.server = server
        self.ticket = ticket
        self.opened_at = time.monotonic()
        self.closed_at: float | None = None
        self.silent = False
        self.pings = 0
        self._send_lock = threading.Lock()
        self.thread = threading.Thread(target=self._read_loop, daemon=True)

    # --- frames ------------------------------------------------------------------------
    def _frame(self, opcode: int, payload: bytes) -> bytes:
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack("!H", n)
        else:
            head += bytes([127]) + struct.pack("!Q", n)
        return head + payload

    def send_raw(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(self._frame(opcode, payload))

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(0x1, json.dumps(message).encode())

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("eof")
            data += chunk
        return data

    def _read_loop(self) -> None:
        try:
            while True:
                b1, b2 = self._recv_exact(2)
                opcode = b1 & 0x0F
                length = b2 & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", self._recv_exact(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", self._recv_exact(8))
                mask = self._recv_exact(4) if b2 & 0x80 else b"\0\0\0\0"
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(self._recv_exact(length)))
                if self.silent:
                    continue
                if opcode == 0x9:  # ping
                    self.pings += 1
                    self.send_raw(0xA, data)
                elif opcode == 0x1:
                    self.server._received(self, json.loads(data))
                elif opcode == 0x8:
                    try:
                        self.send_raw(0x8, data[:2])
                    finally:
                        self._mark_closed()
                    return
        except (OSError, ConnectionError, ValueError):
            pass
        self._mark_closed()

    def _mark_closed(self) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()
        with contextlib.suppress(OSError):
            self.sock.close()

    # --- faults ------------------------------------------------------------------------
    def go_silent(self) -> None:
        """Stop answering anything, keep the TCP connection open (a black hole)."""
        self.silent = True

    def reset(self) -> None:
        """Abort with RST, no close frame."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close_without_frame(self) -> None:
        """FIN, no close frame."""
        self.sock.shutdown(socket.SHUT_RDWR)


class SocketModeServer:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[WsConnection] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.ack_times: dict[str, float] = {}
        self.messages: list[dict[str, Any]] = []
        self.auto_hello = True
        self._tickets = itertools.count(1)
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket={next(self._tickets)}"

    def start(self) -> SocketModeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self.listener.close()
        for conn in self.connections:
            conn._mark_closed()

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(sock,), daemon=True).start()

    def _handshake(self, sock: socket.socket) -> None:
        sock.settimeout(5)
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                sock.close()
                return
            request += chunk
        sock.settimeout(None)
        lines = request.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:])}
        ticket = lines[0].split(" ")[1]
        accept = base64.b64encode(
            hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()
        ).decode()
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        conn = WsConnection(sock, self, ticket)
        with self._cond:
            self.connections.append(conn)
            self._cond.notify_all()
        conn.thread.start()
        if self.auto_hello:
            # The client may already have dropped this connection (it replaced it).
            with contextlib.suppress(OSError):
                conn.send(
                    {
                        "type": "hello",
                        "num_connections": 1,
                        "debug_info": {"host": "fake", "approximate_connection_time": 18060},
                        "connection_info": {"app_id": "A0001"},
                    }
                )

    def _received(self, conn: WsConnection, message: dict[str, Any]) -> None:
        with self._cond:
            self.messages.append(message)
            if "envelope_id" in message:
                self.acks[message["envelope_id"]] = message
                self.ack_times[message["envelope_id"]] = time.monotonic()
            self._cond.notify_all()

    # --- test helpers ------------------------------------------------------------------
    def wait_connections(self, count: int, timeout: float) -> WsConnection:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.connections) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.connections)} connections, wanted {count}")
                self._cond.wait(left)
            return self.connections[count - 1]

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while envelope_id not in self.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no ack for {envelope_id}")
                self._cond.wait(left)
            return self.acks[envelope_id]

    @property
    def current(self) -> WsConnection:
        with self._cond:
            return self.connections[-1]
