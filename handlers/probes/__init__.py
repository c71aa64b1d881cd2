"""The probes of `check`, one function per finding id, in report order."""

from __future__ import annotations

from collections.abc import Callable

from handlers.facts import Facts
from handlers.probes import chat, config, errors, host, models, network, ollama, plugin, stack
from handlers.results import Finding

Probe = Callable[[Facts], Finding]

PROBES: tuple[tuple[str, Probe], ...] = (
    ("docker.engine", stack.docker_engine),
    ("dify.project", stack.dify_project),
    ("dify.containers", stack.dify_containers),
    ("dify.health", stack.dify_health),
    ("ollama.host", ollama.ollama_host),
    ("ollama.bind", ollama.ollama_bind),
    ("ollama.models", ollama.ollama_models),
    ("container.dns", network.container_dns),
    ("container.reach", network.container_reach),
    ("container.proxy", network.container_proxy),
    ("dify.base_url", config.dify_base_url),
    ("env.file", config.env_file),
    ("env.drift", config.env_drift),
    ("dify.web", host.dify_web),
    ("host.resources", host.host_resources),
    ("dify.secrets", config.dify_secrets),
    ("dify.plugin", plugin.dify_plugin),
    ("ollama.capabilities", models.ollama_capabilities),
    ("dify.timeouts", models.dify_timeouts),
    ("dify.errors", errors.dify_errors),
    ("dify.chat", chat.dify_chat),
)

FINDING_IDS = tuple(finding_id for finding_id, _ in PROBES)
# Run only when asked for (`check --chat`, `--only dify.chat`, the check after a restart when
# the model is loaded): a chat loads the model, which a diagnosis must not do unasked.
ON_REQUEST = frozenset({"dify.chat"})
