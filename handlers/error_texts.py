"""The error texts Dify, its Ollama plugin and plugin_daemon log when a model call fails, each
linked to the finding that explains it (langgenius/dify issues; the team's field notes,
"Failures users report most after plain connectivity"). plugin_daemon's own wording, from
langgenius/dify-plugin-daemon (commit bdb5642): "plugin runtime not found"
(internal/core/control_panel/exec.go), "no available node, " + the cause
(internal/server/middleware.go), "plugin verification has been enabled, and the plugin you want
to install has a bad signature" (internal/service/plugin_decoder.go), "failed to init
environment" (internal/core/control_panel/launcher_local.go; older releases: "init environment
failed").

Matching is by lower-case substrings (linear in the line), plus one bounded regular expression
for "expected N dimensions, not M"; lines are already cut to a bounded length before this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ErrorText:
    label: str  # what the report calls it
    finding: str | None  # the finding that explains it (None: no finding does)
    needles: tuple[str, ...]  # any of these (lower case) in the line
    near: bool = False  # and, in the same line, something naming Ollama (see `classify`)
    hint: str = ""  # what to do, when no finding explains it


# Since 1.15 ssrf_proxy (squid) denies private addresses, host.docker.internal's included, to
# the HTTP Request and Code nodes (api/core/helper/ssrf_proxy.py: "Access to '<url>' was
# blocked by SSRF protection"). Model calls through the Ollama provider do not go through it,
# so no connectivity finding explains it: only lines that name Ollama count.
SSRF = ErrorText(
    "blocked by SSRF protection",
    None,
    ("blocked by ssrf protection",),
    near=True,
    hint="Dify 1.15+'s ssrf_proxy refuses private addresses to HTTP Request and Code nodes: "
    "set SSRF_PROXY_ALLOW_PRIVATE_IPS (or SSRF_PROXY_ALLOW_PRIVATE_DOMAINS) in .env to the "
    "Ollama host, then recreate ssrf_proxy (docker compose up -d ssrf_proxy); or call the "
    "model through the Ollama provider",
)
KNOWN: tuple[ErrorText, ...] = (
    ErrorText(
        "Connection refused",
        "dify.base_url",
        ("connection refused", "errno 111", "newconnectionerror"),
        near=True,
    ),
    ErrorText(
        "NameResolutionError",
        "container.dns",
        (
            "nameresolutionerror",
            "name or service not known",
            "temporary failure in name resolution",
        ),
        near=True,
    ),
    ErrorText("ProxyError", "container.proxy", ("proxyerror", "unable to connect to proxy")),
    ErrorText("Read timed out (read timeout=300)", "dify.timeouts", ("read timeout=",)),
    ErrorText("killed by timeout", "dify.timeouts", ("killed by timeout",)),
    ErrorText("does not support tools", "ollama.capabilities", ("does not support tools",)),
    ErrorText(
        "does not support embeddings", "ollama.capabilities", ("does not support embeddings",)
    ),
    ErrorText("model not found", "ollama.models", ("not found, try pulling it first",)),
    ErrorText(
        "plugin signature rejected",
        "dify.plugin",
        ("bad signature", "plugin verification has been enabled"),
    ),
    ErrorText(
        "init environment failed",
        "dify.plugin",
        ("init environment failed", "failed to init environment"),
    ),
    ErrorText("plugin runtime not found", "dify.plugin", ("plugin runtime not found",)),
    ErrorText(
        "no available node, plugin not found",
        "dify.plugin",
        ("no available node, plugin not found",),
    ),
    SSRF,
)
# An embedding model changed under an existing knowledge base: no connectivity finding can
# explain it; the remedy is to re-embed (or go back to the old model).
DIMENSIONS = ErrorText(
    "expected N dimensions",
    None,
    (),
    hint="the knowledge base was embedded with another model: re-embed it with the current "
    "model (Knowledge -> Settings), or configure the old embedding model again",
)
_DIMENSIONS = re.compile(r"expected (\d{1,7}) dimensions, not (\d{1,7})")
CREDENTIALS = "credentials validation failed:"
# Words that place a connection error on the way to Ollama rather than, say, to Redis.
OLLAMA_WORDS = ("ollama", "11434", "/api/chat", "/api/generate", "/api/embed", "/api/tags")


@dataclass
class Hit:
    text: ErrorText
    count: int = 0
    sample: str = ""  # the first line, as logged (already redacted)
    services: list[str] = field(default_factory=list)
    wrapped: bool = False  # seen inside "Credentials validation failed: ..."

    @property
    def shown(self) -> str:
        return ("Credentials validation failed: " if self.wrapped else "") + self.text.label


def classify(line: str, ollama_hosts: Sequence[str] = ()) -> tuple[ErrorText, bool] | None:
    """The known error text in `line` (and whether Dify wrapped it in "Credentials validation
    failed:"), or None. `ollama_hosts`: host:port strings of Dify's Ollama URLs."""
    low = line.lower()
    wrapped = False
    at = low.find(CREDENTIALS)
    if at >= 0:
        low, wrapped = low[at + len(CREDENTIALS) :], True  # the real error is after the colon
    near = any(word in low for word in OLLAMA_WORDS) or any(
        host and host.lower() in low for host in ollama_hosts
    )
    for text in KNOWN:
        if any(needle in low for needle in text.needles) and (near or not text.near):
            return text, wrapped
    if "dimensions" in low and _DIMENSIONS.search(low):
        return DIMENSIONS, wrapped
    if wrapped:
        return ErrorText(
            "Credentials validation failed",
            None,
            (),
            hint="read the text after the colon in the sample: it is the real error",
        ), False
    return None


def scan(logs: Iterable[tuple[str, Sequence[str]]], ollama_hosts: Sequence[str] = ()) -> list[Hit]:
    """Known error texts in (service, lines) pairs: a count, the first line and the services
    for each, in the order of KNOWN."""
    hits: dict[str, Hit] = {}
    for service, lines in logs:
        for line in lines:
            found = classify(line, ollama_hosts)
            if found is None:
                continue
            text, wrapped = found
            key = f"{text.label}|{wrapped}"
            hit = hits.setdefault(key, Hit(text, wrapped=wrapped))
            hit.count += 1
            if not hit.sample:
                hit.sample = line.strip()[:300]
            if service not in hit.services:
                hit.services.append(service)
    order = {t.label: i for i, t in enumerate((*KNOWN, DIMENSIONS))}
    return sorted(hits.values(), key=lambda h: (order.get(h.text.label, 99), h.wrapped))
