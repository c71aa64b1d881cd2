"""dify.chat: the seed's own call, end to end. From inside plugin_daemon (api, then worker, on
0.x: no plugins there), POST <base_url>/api/chat with a configured chat model, `stream: false`,
one token, under CHAT_TIMEOUT. It loads the model when it is not loaded, so a plain check does
not run it: `check --chat` (and the Slack report's "Chat test" button) does, and the check
after fix-env/restart runs it only when the model is loaded already (mode "if-loaded")."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from config.i18n import gettext as _
from handlers import container_exec, runtime_facts
from handlers.dify_db import CredentialRow
from handlers.facts import Facts, Skip
from handlers.results import Finding, HandlerError, Status
from handlers.urls import root_of, without_credentials

CHAT_MODES = ("off", "on", "if-loaded")


# How its skips begin (handlers/probes/__init__.py: skips that are an answer, not a gap).
def not_requested() -> str:
    return _("not requested")


def not_run() -> str:
    return _("chat test not run")


def no_chat_model() -> str:
    return _("no Ollama chat model")


# A load this slow works today but leaves little room: the plugin reads with a 300 s timeout.
SLOW_LOAD_SECONDS = 30.0


def chat_body(model: str) -> str:
    return json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "Reply with one word."}],
            "stream": False,
            "options": {"num_predict": 1},
        },
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class Target:
    service: str
    container_id: str
    model: str
    url: str  # the model's base_url, as Dify calls it


def pick_target(
    rows: Sequence[CredentialRow],
    callers: Sequence[tuple[str, str]],
    loaded: Mapping[str, object],
) -> Target | None:
    """The first running caller and a chat model (one that is loaded, if any is)."""
    chats = [r for r in rows if r.model_type == "llm" and r.base_url]
    if not chats or not callers:
        return None
    chats.sort(key=lambda r: r.model not in loaded)
    row = chats[0]
    service, cid = callers[0]
    return Target(service, cid, row.model, str(row.base_url))


def judge(target: Target, probe: container_exec.HttpProbe, timeout: float) -> Finding:
    """The finding for one chat call's outcome (pure)."""
    url = without_credentials(root_of(target.url)) + "/api/chat"
    where = f"POST {url} from {target.service} with {target.model} via {probe.tool}"
    if probe.ok:
        try:
            data = json.loads(probe.body)
        except ValueError:
            data = None
        if not isinstance(data, dict) or "message" not in data:
            return Finding(
                "dify.chat",
                Status.FAIL,
                _("{url} answered HTTP {code}, but not with Ollama's chat answer").format(
                    url=url, code=probe.status
                ),
                detail=where,
                remedy=_(
                    "Something else answers at Dify's Ollama URL: check its host and port "
                    "(dify.base_url)."
                ),
                service=target.service,
            )
        load = float(data.get("load_duration") or 0) / 1e9
        total = float(data.get("total_duration") or 0) / 1e9
        detail = (
            f"{where}: HTTP 200 in {probe.latency_ms} ms (model load {load:.1f} s, Ollama "
            f"total {total:.1f} s)"
        )
        if load >= SLOW_LOAD_SECONDS:
            return Finding(
                "dify.chat",
                Status.WARN,
                _("Dify can chat with {model}, but loading it took {seconds} s").format(
                    model=target.model, seconds=f"{load:.0f}"
                ),
                detail=detail,
                remedy=_(
                    "A cold load this slow risks Dify's timeouts (see dify.timeouts): keep "
                    "the model loaded (OLLAMA_KEEP_ALIVE) or use a smaller one."
                ),
                service=target.service,
            )
        return Finding(
            "dify.chat",
            Status.OK,
            _("Dify can chat: {model} answered {service} in {ms} ms").format(
                model=target.model, service=target.service, ms=probe.latency_ms
            ),
            detail,
        )
    if probe.error == "timeout":
        return Finding(
            "dify.chat",
            Status.WARN,
            _(
                "{model} gave no answer within CHAT_TIMEOUT ({seconds} s): slow, most likely "
                "still loading"
            ).format(model=target.model, seconds=f"{timeout:g}"),
            detail=f"{where}: {probe.error_text or 'timed out'}",
            remedy=_(
                "Run the chat test again in a minute; if the first answer keeps taking this "
                "long, keep the model loaded (OLLAMA_KEEP_ALIVE) or use a smaller one (see "
                "dify.timeouts)."
            ),
            service=target.service,
        )
    if probe.status == 404:
        return Finding(
            "dify.chat",
            Status.FAIL,
            _("Ollama does not know {model} (HTTP 404)").format(model=target.model),
            detail=f"{where}: {probe.body[:200] or probe.error_text}",
            remedy=_(
                "`ollama pull {model}` (see ollama.models), or the base URL has a path "
                "(see dify.base_url)."
            ).format(model=target.model),
            service=target.service,
        )
    if probe.status is not None:
        return Finding(
            "dify.chat",
            Status.FAIL,
            _("Ollama refused the chat with {model}: HTTP {code}").format(
                model=target.model, code=probe.status
            ),
            detail=f"{where}: {probe.body[:300] or probe.error_text}",
            remedy=_(
                'Read the answer above; "does not support" means the model cannot chat '
                "(see ollama.capabilities)."
            ),
            service=target.service,
        )
    return Finding(
        "dify.chat",
        Status.FAIL,
        _("Dify cannot reach Ollama to chat ({error})").format(error=probe.error),
        detail=f"{where}: {probe.error_text}",
        remedy=_("See container.reach and dify.base_url: they say why."),
        service=target.service,
    )


def dify_chat(facts: Facts) -> Finding:
    mode = facts.chat
    if mode == "off":
        raise Skip(
            _("{not_requested} (`dify-ollama check --chat`)").format(not_requested=not_requested())
        )
    try:
        rows = facts.credentials()
    except HandlerError as exc:
        raise Skip(_("needs dify.base_url ({error})").format(error=exc)) from None
    project = facts.project()
    order = ("plugin_daemon",) if runtime_facts.has_plugin_daemon(facts) else ("api", "worker")
    callers = [(s, cid) for s in order if (cid := project.running(s))]
    if not callers:
        raise Skip(
            _("needs dify.containers ({services} not running)").format(
                services=_(" or ").join(order)
            )
        )
    loaded = runtime_facts.loaded_models(facts) if facts.ollama().ok else {}
    target = pick_target(rows, callers, loaded)
    if target is None:
        return Finding(
            "dify.chat",
            Status.SKIP,
            _("{no_chat_model} (LLM) is configured in Dify: nothing to chat with").format(
                no_chat_model=no_chat_model()
            ),
        )
    if mode == "if-loaded" and target.model not in loaded:
        return Finding(
            "dify.chat",
            Status.SKIP,
            _(
                "{not_run}: {model} is not loaded in Ollama (the test would load it; "
                "`dify-ollama check --chat` runs it anyway)"
            ).format(not_run=not_run(), model=target.model),
        )
    timeout = facts.settings.chat_timeout
    env = container_exec.tool_proxy_env(facts.container_env(target.container_id)) or None
    probe = container_exec.http_get(
        facts.client(),
        target.container_id,
        root_of(target.url) + "/api/chat",
        timeout,
        env,
        post=chat_body(target.model),
    )
    return judge(target, probe, timeout)
