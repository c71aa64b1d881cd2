"""A Unix-socket forwarder in front of the private engine: the engine as a client sees it, with
a switch to make it go away (every connection dropped, new ones refused) and come back, which
is what an engine restart looks like from the bot, without touching the shared engine."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path


class SocketProxy:
    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target  # the engine's socket path
        self._server: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> SocketProxy:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # stopped
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop_all(self) -> None:
        """Cut every open connection (the event stream included), as a dying engine does."""
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self) -> None:
        """The engine is gone: connections dropped, the socket removed."""
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            with contextlib.suppress(OSError):
                server.close()
        self.drop_all()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> SocketProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
