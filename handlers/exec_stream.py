"""Starting an exec in a container and reading every byte it prints.

docker-py (7.1 and 7.2 alike) reads an attached exec's frames from the raw socket, past the
buffered reader that http.client parsed the engine's `101 UPGRADED` headers through. Frames that
reached the client in the same read as those headers sit in that buffer and are silently
dropped: the exec "succeeds" with exit code 0 and no output (docker/docker-py#3332, #2042; a
fix is proposed upstream in #3438). It strikes when the client reads late: on a loaded host,
behind a socket proxy, over a forwarded socket. For this product that turned `psql` printing
the Ollama rows into "no Ollama model is configured in Dify". So the exec is started here
through the same client session, and the frames are read from the buffered reader itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

import docker
import requests

STDOUT = 1
STDERR = 2
HEADER_SIZE = 8  # stream type, three zero bytes, big-endian payload length


class StreamUnreadable(RuntimeError):
    """The HTTP stack gave no buffered reader to read the upgraded connection from."""


def frames(reader: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(stream, data) of each frame of Docker's multiplexed stream, until it ends; a frame the
    connection cut short is yielded as far as it came."""
    while True:
        header = _read_exactly(reader, HEADER_SIZE)
        if len(header) < HEADER_SIZE:
            return
        size = int.from_bytes(header[4:8], "big")
        data = _read_exactly(reader, size)
        if data:
            yield header[0], data
        if len(data) < size:
            return


def start(api: docker.APIClient, exec_id: str, timeout: float) -> Iterator[tuple[int, bytes]]:
    """Start a created (non-tty) exec and yield its (stream, data) frames until it ends.

    `timeout` bounds each wait for bytes from the engine (and the connect), not the whole
    exec: callers hold their own deadline. docker.errors.APIError when the engine refuses.
    """
    response = api.post(
        f"{api.base_url}/v{api.api_version}/exec/{exec_id}/start",
        json={"Detach": False, "Tty": False},
        headers={"Connection": "Upgrade", "Upgrade": "tcp"},
        stream=True,
        timeout=timeout,
    )
    try:
        try:
            response.raise_for_status()
        except requests.HTTPError as exc:
            raise docker.errors.create_api_error_from_http_exception(exc) from None
        yield from frames(_buffered_reader(response))
    finally:
        response.close()


def collect(frames_seen: Iterable[tuple[int, bytes]]) -> tuple[bytes, bytes]:
    """(stdout, stderr) of a whole stream."""
    out: list[bytes] = []
    err: list[bytes] = []
    for stream, data in frames_seen:
        (err if stream == STDERR else out).append(data)
    return b"".join(out), b"".join(err)


def _buffered_reader(response: requests.Response) -> BinaryIO:
    # urllib3's response wraps http.client's, whose `fp` is the buffered reader the headers
    # came through (docker-py reaches the same object, then steps past its buffer).
    reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
    if reader is None or not callable(getattr(reader, "read", None)):
        raise StreamUnreadable(
            "the exec's output stream is not readable through this urllib3/http.client"
        )
    return reader  # type: ignore[no-any-return]


def _read_exactly(reader: BinaryIO, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = reader.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
