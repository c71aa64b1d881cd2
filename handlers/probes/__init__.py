"""The probes of `check`, one function per finding id, in report order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from config.i18n import gettext as _
from handlers.facts import Facts
from handlers.probes import chat, config, errors, host, models, network, ollama, plugin, stack
from handlers.results import Finding, Status

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

# What each probe needs to have passed before it can say anything: the findings whose failure
# makes it skip ("needs dify.containers (...)"). A subset of the probes runs with everything
# these name, transitively, and reports it: a skip is then explained by a failure in the same
# report, never shown as "ok".
REQUIRES: dict[str, tuple[str, ...]] = {
    "docker.engine": (),
    "dify.project": ("docker.engine",),
    "dify.containers": ("dify.project",),
    "dify.health": ("dify.containers",),
    "ollama.host": (),
    "ollama.bind": (),
    "ollama.models": ("ollama.host", "dify.base_url"),
    "container.dns": ("dify.containers",),
    "container.reach": ("dify.containers", "ollama.host"),
    "container.proxy": ("dify.containers",),
    "dify.base_url": ("dify.containers",),
    "env.file": ("dify.project",),
    "env.drift": ("env.file", "dify.containers"),
    "dify.web": ("dify.project",),
    "host.resources": (),
    "dify.secrets": ("env.file",),
    "dify.plugin": ("dify.base_url",),
    "ollama.capabilities": ("ollama.host", "dify.base_url"),
    "dify.timeouts": ("ollama.host", "dify.base_url"),
    "dify.errors": ("dify.containers",),
    "dify.chat": ("dify.base_url",),
}

# Skips that are an answer, not a gap: the stack has nothing there to check (0.x has no
# plugins; the chat test was not run because it would load the model, or there is no chat
# model). They stay skips with their reason even when every prerequisite passed.
# Functions: the prefixes are in the language the findings were written in.
NOT_APPLICABLE: dict[str, tuple[Callable[[], str], ...]] = {
    "dify.plugin": (plugin.no_plugins,),
    "dify.chat": (chat.not_requested, chat.not_run, chat.no_chat_model),
}


def not_applicable(finding: Finding) -> bool:
    """Whether a skip says the check does not apply here (see NOT_APPLICABLE)."""
    prefixes = tuple(prefix() for prefix in NOT_APPLICABLE.get(finding.id, ()))
    return bool(prefixes) and finding.summary.startswith(prefixes)


def prerequisites(finding_id: str) -> tuple[str, ...]:
    """Every finding `finding_id` needs, transitively, in report order."""
    needed: set[str] = set()
    todo = list(REQUIRES.get(finding_id, ()))
    while todo:
        current = todo.pop()
        if current not in needed:
            needed.add(current)
            todo += REQUIRES.get(current, ())
    return tuple(fid for fid in FINDING_IDS if fid in needed)


def with_prerequisites(only: tuple[str, ...]) -> tuple[str, ...]:
    """The ids to run for `only` (empty: all): the ones asked and what they need, in report
    order."""
    if not only:
        return FINDING_IDS
    wanted = set(only)
    for finding_id in only:
        wanted |= set(prerequisites(finding_id))
    return tuple(fid for fid in FINDING_IDS if fid in wanted)


def account_for_skips(findings: tuple[Finding, ...]) -> tuple[Finding, ...]:
    """A skip must be explained by a failing (or warning) prerequisite in the same report;
    one that is not (its prerequisites passed, or were not run) becomes a warning that says
    what could not be checked. A probe with no prerequisites that skips is not applicable
    here (ollama.bind for a remote Ollama) and stays a skip."""
    status = {f.id: f.status for f in findings}
    out = []
    for finding in findings:
        needs = prerequisites(finding.id)
        explained = any(status.get(n) in (Status.FAIL, Status.WARN) for n in needs)
        applies = not not_applicable(finding)
        if finding.status is Status.SKIP and needs and not explained and applies:
            finding = replace(
                finding,
                status=Status.WARN,
                summary=_("not checked: {summary}").format(summary=finding.summary),
                remedy=finding.remedy
                or _("Run `dify-ollama check` (all probes) to see why; it needs {needs}.").format(
                    needs=", ".join(needs)
                ),
            )
        out.append(finding)
    return tuple(out)
