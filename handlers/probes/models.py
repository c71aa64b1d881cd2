"""What Dify's stored model configs claim against what Ollama says the models are:
ollama.capabilities (tools, vision, embeddings, context size) and dify.timeouts (cold loads
against the plugin's read timeout and plugin_daemon's execution limit)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from config.i18n import gettext as _
from handlers import runtime_facts
from handlers.dify_db import CredentialRow
from handlers.facts import Facts, Skip
from handlers.probes.host import available_memory
from handlers.results import Finding, HandlerError, Status

GIB = 1024**3


def edit_path(model: str) -> str:
    return _("Dify: Settings -> Model Provider -> Ollama -> {model} -> edit the model").format(
        model=model
    )


PLUGIN_READ_TIMEOUT = 300  # the Ollama plugin's requests timeout=(10, 300), fixed in its code
DEFAULT_MAX_EXECUTION = 600  # plugin_daemon's PLUGIN_MAX_EXECUTION_TIMEOUT default
# A cold load reads the whole model file: 100 MB/s is a slow disk or a busy host; a load that
# would take half the limit at that pace is a risk worth naming.
LOAD_BYTES_PER_SECOND = 100 * 1024**2
RISK_SHARE = 0.5


@dataclass(frozen=True)
class Configured:
    """One model as Dify stores it (the first row of each name and type)."""

    model: str
    model_type: str  # llm | text-embedding | rerank
    tools: bool
    vision: bool
    context_size: int | None


def _flag(config: Mapping[str, Any], key: str) -> bool:
    return str(config.get(key, "false")).strip().lower() == "true"


def configured(rows: Sequence[CredentialRow]) -> list[Configured]:
    seen: dict[tuple[str, str], Configured] = {}
    for row in rows:
        try:
            config = json.loads(row.config) if row.config else {}
        except ValueError:
            config = {}
        if not isinstance(config, dict):
            config = {}
        size = str(config.get("context_size") or "").strip()
        item = Configured(
            row.model,
            row.model_type,
            _flag(config, "function_call_support"),
            _flag(config, "vision_support"),
            int(size) if size.isdigit() else None,
        )
        seen.setdefault((row.model, row.model_type), item)
    return list(seen.values())


@dataclass(frozen=True)
class Mismatch:
    model: str
    severity: Status  # FAIL: calls fail; WARN: calls work, worse than configured
    what: str  # both sides
    error: str  # what users will see
    setting: str  # the setting to change


def mismatches(
    models: Sequence[Configured],
    shows: Mapping[str, runtime_facts.ModelShow],
    runner_ctx: Mapping[str, int],
) -> tuple[list[Mismatch], list[str]]:
    """(mismatches, evidence lines) for each configured model against /api/show (pure).
    `runner_ctx`: the context length each loaded model runs with (/api/ps)."""
    found: list[Mismatch] = []
    lines: list[str] = []
    for m in models:
        show = shows.get(m.model)
        if show is None or show.error is not None:
            why = show.error if show is not None else "not asked"
            lines.append(f"{m.model} ({m.model_type}): /api/show failed ({why})")
            continue
        if show.capabilities is None:
            lines.append(f"{m.model}: this Ollama reports no capabilities (upgrade to verify)")
            continue
        caps = set(show.capabilities)
        lines.append(
            f"{m.model} ({m.model_type}): Ollama {', '.join(sorted(caps)) or 'none'}; "
            f"context {show.context_length or '?'}; Dify tools={m.tools} vision={m.vision} "
            f"context_size={m.context_size or '?'}"
        )
        edit = edit_path(m.model)
        if m.model_type == "text-embedding" and "embedding" not in caps:
            found.append(
                Mismatch(
                    m.model,
                    Status.FAIL,
                    _(
                        "{model} is configured as a text embedding model; Ollama says it can "
                        "do {caps}, not embedding"
                    ).format(model=m.model, caps=", ".join(sorted(caps))),
                    "this model does not support embeddings",
                    _(
                        "configure an embedding model (e.g. nomic-embed-text) as Text Embedding "
                        "in Dify and remove {model} there"
                    ).format(model=m.model),
                )
            )
            continue
        if m.model_type != "llm":
            continue  # rerank: Ollama reports no rerank capability to compare with
        if "completion" not in caps:
            found.append(
                Mismatch(
                    m.model,
                    Status.FAIL,
                    _(
                        "{model} is configured as an LLM; Ollama says it can do {caps}, "
                        "not completion"
                    ).format(model=m.model, caps=", ".join(sorted(caps))),
                    f'"{m.model}" does not support chat',
                    _(
                        "remove {model} as LLM in Dify (configure it as Text Embedding if it is "
                        "an embedding model)"
                    ).format(model=m.model),
                )
            )
            continue
        if m.tools and "tools" not in caps:
            found.append(
                Mismatch(
                    m.model,
                    Status.FAIL,
                    _(
                        "Dify says {model} supports function calling; Ollama says it does not"
                    ).format(model=m.model),
                    f"{m.model} does not support tools",
                    _("{edit}: Function call support = No (or use a model with tools)").format(
                        edit=edit
                    ),
                )
            )
        if m.vision and "vision" not in caps:
            found.append(
                Mismatch(
                    m.model,
                    Status.FAIL,
                    _("Dify says {model} supports vision; Ollama says it does not").format(
                        model=m.model
                    ),
                    "image input fails for this model",
                    _("{edit}: Vision support = No (or use a vision model)").format(edit=edit),
                )
            )
        if m.context_size and show.context_length and m.context_size > show.context_length:
            found.append(
                Mismatch(
                    m.model,
                    Status.WARN,
                    _(
                        "Dify's context size {size} for {model} exceeds the model's maximum {most}"
                    ).format(size=m.context_size, model=m.model, most=show.context_length),
                    "long prompts fail or are cut",
                    _("{edit}: Model context size = {most} or less").format(
                        edit=edit, most=show.context_length
                    ),
                )
            )
            continue
        runs = runner_ctx.get(m.model) or show.num_ctx
        if m.context_size and runs and m.context_size > runs:
            found.append(
                Mismatch(
                    m.model,
                    Status.WARN,
                    _(
                        "Dify's context size {size} is not sent to Ollama, which runs {model} "
                        "with num_ctx {runs}"
                    ).format(size=m.context_size, model=m.model, runs=runs),
                    f"Ollama silently truncates prompts (its log: truncating input prompt "
                    f"limit={runs})",
                    _(
                        "give Ollama the context: OLLAMA_CONTEXT_LENGTH={size} on the Ollama "
                        "server (or PARAMETER num_ctx {size} in a Modelfile), or set Dify's "
                        "context size to {runs}"
                    ).format(size=m.context_size, runs=runs),
                )
            )
    return found, lines


def _rows(facts: Facts) -> list[CredentialRow]:
    if not facts.ollama().ok:
        raise Skip(_("needs ollama.host"))
    try:
        return facts.credentials()
    except HandlerError as exc:
        raise Skip(_("needs dify.base_url ({error})").format(error=exc)) from None


def ollama_capabilities(facts: Facts) -> Finding:
    rows = _rows(facts)
    models = configured(rows)
    if not models:
        return Finding("ollama.capabilities", Status.OK, _("no Ollama model is configured in Dify"))
    pulled = runtime_facts.pulled_models(facts)
    asked = [m.model for m in models if m.model in pulled]
    shows = runtime_facts.shows(facts, list(dict.fromkeys(asked)))
    runner = {
        name: int(entry["context_length"])
        for name, entry in runtime_facts.loaded_models(facts).items()
        if isinstance(entry.get("context_length"), int)
    }
    found, lines = mismatches([m for m in models if m.model in pulled], shows, runner)
    unasked = sorted({m.model for m in models} - set(asked))
    if unasked:
        lines.append(f"not pulled (see ollama.models): {', '.join(unasked)}")
    unverified = [m for m in asked if shows[m].error or shows[m].capabilities is None]
    detail = "; ".join(lines)
    if found:
        worst = Status.FAIL if any(f.severity is Status.FAIL for f in found) else Status.WARN
        first = found[0]
        return Finding(
            "ollama.capabilities",
            worst,
            _("{count} model setting(s) in Dify do not match Ollama: {first}").format(
                count=len(found), first=first.what
            ),
            detail="; ".join(
                [f"{f.what} (Dify shows: {f.error}) -> {f.setting}" for f in found] + lines
            ),
            remedy="; ".join(dict.fromkeys(f.setting for f in found)) + ".",
        )
    if unverified:
        return Finding(
            "ollama.capabilities",
            Status.WARN,
            _("capabilities not verified for {models}").format(models=", ".join(unverified)),
            detail=detail,
            remedy=_("Ollama >= 0.6 reports capabilities in /api/show: upgrade Ollama to verify."),
        )
    return Finding(
        "ollama.capabilities",
        Status.OK,
        _("the settings of {count} configured model(s) match what Ollama says they can do").format(
            count=len(asked)
        ),
        detail,
    )


def _seconds(text: str | None) -> int | None:
    value = (text or "").strip()
    return int(value) if value.isdigit() else None


@dataclass(frozen=True)
class LoadRisk:
    model: str
    size: int
    estimate: float  # seconds a cold load takes at LOAD_BYTES_PER_SECOND
    loaded: bool


def load_risks(
    names: Sequence[str],
    pulled: Mapping[str, Mapping[str, Any]],
    loaded: Mapping[str, Mapping[str, Any]],
    limit: int,
    available: int,
) -> tuple[list[LoadRisk], list[str]]:
    """Models whose cold load may reach `limit` seconds (or not fit in `available` bytes of
    memory), with evidence lines for all of them (pure)."""
    risks, lines = [], []
    for name in names:
        entry = pulled.get(name)
        if entry is None:
            continue
        size = int(entry.get("size") or 0)
        estimate = size / LOAD_BYTES_PER_SECOND
        if name in loaded:
            until = str(loaded[name].get("expires_at") or "?")
            lines.append(f"{name}: loaded (kept until {until})")
            continue
        fits = not available or size <= available
        lines.append(
            f"{name}: not loaded, {size / GIB:.1f} GiB, cold load ~{estimate:.0f} s"
            + ("" if fits else ", larger than the memory available")
        )
        if estimate >= RISK_SHARE * limit or not fits:
            risks.append(LoadRisk(name, size, estimate, False))
    return risks, lines


def dify_timeouts(facts: Facts) -> Finding:
    rows = _rows(facts)
    names = list(dict.fromkeys(r.model for r in rows if r.model_type in ("llm", "text-embedding")))
    plugins = runtime_facts.has_plugin_daemon(facts)
    limits = [f"the Ollama plugin's read timeout {PLUGIN_READ_TIMEOUT} s (fixed)"]
    limit = PLUGIN_READ_TIMEOUT
    notes: list[str] = []
    if plugins:
        daemon = facts.project().running("plugin_daemon")
        daemon_env = facts.container_env(daemon) if daemon else {}
        running = _seconds(daemon_env.get("PLUGIN_MAX_EXECUTION_TIMEOUT"))
        effective = running or DEFAULT_MAX_EXECUTION
        limits.append(f"PLUGIN_MAX_EXECUTION_TIMEOUT {effective} s (plugin_daemon)")
        limit = min(limit, effective)
        wanted = _seconds(facts.env_or_empty().get("PLUGIN_MAX_EXECUTION_TIMEOUT"))
        if daemon and wanted and wanted != effective:
            notes.append(
                _(
                    "PLUGIN_MAX_EXECUTION_TIMEOUT is {wanted} in .env but plugin_daemon runs with "
                    "{effective}: recreate it (`dify-ollama restart plugin_daemon`; `docker "
                    "restart` keeps the old value)"
                ).format(wanted=wanted, effective=effective)
            )
        if effective < PLUGIN_READ_TIMEOUT:
            notes.append(
                _(
                    "plugin_daemon kills calls after {effective} s, before the plugin's own "
                    "{read} s read timeout (Dify shows: killed by timeout)"
                ).format(effective=effective, read=PLUGIN_READ_TIMEOUT)
            )
    risks, lines = load_risks(
        names,
        runtime_facts.pulled_models(facts),
        runtime_facts.loaded_models(facts),
        limit,
        available_memory(),
    )
    detail = "; ".join([*lines, f"limits: {', '.join(limits)}", *notes])
    if risks or notes:
        shown = ", ".join(f"{r.model} (~{r.estimate:.0f} s)" for r in risks)
        summary = (
            _("a cold load may be killed by the {limit} s limit: {models}").format(
                limit=limit, models=shown
            )
            if risks
            else notes[0].replace("：", ":").split(":")[0]  # a Chinese note's colon too
        )
        return Finding(
            "dify.timeouts",
            Status.WARN,
            summary,
            detail=detail,
            remedy=_(
                "Keep the model loaded (OLLAMA_KEEP_ALIVE=24h, or -1, on the Ollama server), "
                "use a smaller model or quantization, or raise PLUGIN_MAX_EXECUTION_TIMEOUT in "
                ".env and recreate plugin_daemon (`dify-ollama restart plugin_daemon`; a plain "
                "restart keeps the old value). The plugin's 300 s read timeout cannot be changed."
            ),
            service="plugin_daemon" if plugins else None,
        )
    return Finding(
        "dify.timeouts",
        Status.OK,
        _("no configured model is at risk of the {limit} s limit on a cold load").format(
            limit=limit
        ),
        detail,
    )
