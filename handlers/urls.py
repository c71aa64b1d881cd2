"""Small facts about URLs: loopback or not, wrong suffixes, credentials hidden."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

from handlers.redact import MASK

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
DEFAULT_DIFY_OLLAMA_URL = "http://host.docker.internal:11434"
PUBLIC_OPENAI_BASE = "https://api.openai.com/v1"


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def port_of(url: str) -> int:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return port or (443 if parts.scheme == "https" else 80)


def is_loopback_host(host: str) -> bool:
    host = host.lower().strip("[]")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(host_of(url))


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def bad_suffix(url: str) -> str | None:
    """The Ollama plugin appends `api/chat` itself: a `/v1` or `/api` path breaks it."""
    path = urlsplit(url).path.rstrip("/").lower()
    for suffix in ("/v1", "/api"):
        if path.endswith(suffix):
            return suffix
    return None


def root_of(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")).rstrip("/")


def without_credentials(url: str) -> str:
    """Never show user:password@ in a report."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, MASK + "@" + host, parts.path, parts.query, parts.fragment))


# `scheme://userinfo@`: bounded repeats, so a long word without `://` costs linear time.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,30}://)[^/@\s]{1,512}@")


def hide_credentials(text: str) -> str:
    """`text` with the whole userinfo of every URL in it (user and password) masked, as
    `without_credentials` does for one URL: for previews of files and rows."""
    return _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
