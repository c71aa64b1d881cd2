"""A Unix-socket forwarder in front of the private engine: the engine as a client sees it, with
a switch to make it go away (every connection dropped, new ones refused) and come back, which
is what an engine restart looks like from the bot, without touching the shared engine.

With `coalesce` it also holds the engine's bytes back that long and passes them on in one write,
as SSH forwards and socket proxies do: an exec's `101 UPGRADED` headers then reach the client
together with the exec's first output (what docker-py loses, see handlers/exec_stream.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path


class SocketProxy:
    def __init__(self, path: Path, target: str, coalesce: float = 0.0) -> None:
        self.path = path
        self.target = target  # the engine's socket path
        self.coalesce = coalesce  # seconds the engine's bytes are held to go out in one write
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
            for a, b, hold in ((client, upstream, 0.0), (upstream, client, self.coalesce)):
                threading.Thread(target=self._pump, args=(a, b, hold), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, hold: float) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if hold > 0:
                    data += _more_within(source, hold)
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


def _more_within(source: socket.socket, hold: float) -> bytes:
    """What else arrives on `source` within `hold` seconds (bounded: 64 reads, 1 MiB)."""
    more = b""
    source.settimeout(hold)
    try:
        for _ in range(64):
            chunk = source.recv(65536)
            more += chunk
            if not chunk or len(more) >= 1 << 20:
                break
    except TimeoutError:
        pass
    finally:
        source.settimeout(None)
    return more
