"""Is this process in a container with a network namespace of its own? Then 127.0.0.1 is the
container, not the host, and what `ollama.host` and `ollama.bind` see is not the host's Ollama.
(The bot's image is meant to run with `--network host`; see the README.)"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from config.i18n import gettext as _

# A container's own namespace has loopback and its veth peers named eth0, eth1...; a host (or
# a container on the host's network) also has the engine's bridges and veths, or real NICs.
_CONTAINER_ONLY = re.compile(r"lo|eth[0-9]{1,4}")
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")


def looks_isolated(in_container: bool, interfaces: Iterable[str]) -> bool:
    names = list(interfaces)
    return in_container and bool(names) and all(_CONTAINER_ONLY.fullmatch(n) for n in names)


def interfaces(proc_net_dev: Path = Path("/proc/net/dev")) -> list[str]:
    try:
        lines = proc_net_dev.read_text().splitlines()[2:]  # two header lines
    except OSError:
        return []
    return [line.split(":", 1)[0].strip() for line in lines if ":" in line]


def in_isolated_container(root: Path = Path("/")) -> bool:
    in_container = any((root / marker.lstrip("/")).exists() for marker in CONTAINER_MARKERS)
    return looks_isolated(in_container, interfaces())


def isolated_note() -> str:
    return _(
        "This runs inside a container with its own network, where 127.0.0.1 is the container "
        "itself and the host's listening sockets are invisible: run the container with "
        "`--network host` (compose: `network_mode: host`). "
    )
