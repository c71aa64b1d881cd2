"""A throwaway container on the private engine for tests that need one running process of a
local image (no compose project): labelled, removed when it stops, killed afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import docker


@contextlib.contextmanager
def running_box(
    client: docker.DockerClient,
    image: str,
    command: Sequence[str],
    purpose: str,
    environment: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """The container (docker-py's Container) while the block runs; `purpose` goes in its
    `dify-ollama-test` label, so a leftover says which test made it."""
    box = client.containers.run(
        image,
        list(command),
        detach=True,
        remove=True,
        labels={"dify-ollama-test": purpose},
        environment=dict(environment or {}),
    )
    try:
        yield box
    finally:
        with contextlib.suppress(docker.errors.APIError):
            box.kill()
