"""Probes of the Ollama server as the host sees it."""

from __future__ import annotations

import platform

from config.i18n import gettext as _
from handlers.facts import Facts, Skip
from handlers.listening import listeners, reachable_from_containers
from handlers.netns import in_isolated_container, isolated_note
from handlers.results import Finding, HandlerError, Status
from handlers.urls import is_loopback_url, port_of


def ollama_host_remedy() -> str:
    """How to make Ollama listen on every interface, for this host's OS."""
    system = platform.system()
    if system == "Darwin":
        return _("Run `launchctl setenv OLLAMA_HOST 0.0.0.0:11434` and restart the Ollama app.")
    if system == "Windows":
        return _("Set the user environment variable OLLAMA_HOST=0.0.0.0:11434 and restart Ollama.")
    return _(
        "Make Ollama listen on all interfaces: `sudo systemctl edit ollama`, add\n"
        '[Service]\nEnvironment="OLLAMA_HOST=0.0.0.0:11434"\n'
        "then `sudo systemctl daemon-reload && sudo systemctl restart ollama` "
        "(not under systemd: start it with `OLLAMA_HOST=0.0.0.0:11434 ollama serve`). "
        "Pair it with a firewall rule that allows only the Docker bridges to reach port 11434."
    )


def _isolated_note(url: str) -> str:
    """The likeliest cause first when a loopback OLLAMA_URL is checked from a container that
    does not share the host's network."""
    return isolated_note() if is_loopback_url(url) and in_isolated_container() else ""


def ollama_host(facts: Facts) -> Finding:
    url = facts.settings.ollama_url
    answer = facts.ollama()
    if not answer.ok:
        return Finding(
            "ollama.host",
            Status.FAIL,
            _("Ollama does not answer at {url}: {error}").format(url=url, error=answer.error),
            detail=f"GET {url}/api/version failed: {answer.error}",
            remedy=_isolated_note(url)
            + _(
                "Start Ollama (`sudo systemctl start ollama` or `ollama serve`) and check "
                "`journalctl -u ollama`; if it runs elsewhere, set OLLAMA_URL."
            ),
        )
    return Finding(
        "ollama.host",
        Status.OK,
        _("Ollama {version} answers at {url} ({count} models pulled)").format(
            version=answer.version, url=url, count=len(answer.models)
        ),
    )


def ollama_bind(facts: Facts) -> Finding:
    url = facts.settings.ollama_url
    if not is_loopback_url(url):
        return Finding(
            "ollama.bind",
            Status.SKIP,
            _("OLLAMA_URL is not on this host; its bind address cannot be read from here"),
        )
    port = port_of(url)
    addresses = listeners(port)
    if not addresses:
        return Finding(
            "ollama.bind",
            Status.FAIL,
            _("nothing listens on TCP port {port} on this host").format(port=port),
            detail="no LISTEN socket on that port in /proc/net/tcp or /proc/net/tcp6",
            remedy=_isolated_note(url) + _("Start Ollama. ") + ollama_host_remedy(),
        )
    shown = ", ".join(f"{a}:{port}" for a in addresses)
    if not reachable_from_containers(addresses):
        return Finding(
            "ollama.bind",
            Status.FAIL,
            _("Ollama listens only on loopback ({addresses}): containers cannot reach it").format(
                addresses=shown
            ),
            detail=_(
                "Ollama's default bind is 127.0.0.1:11434; inside a container 127.0.0.1 is "
                "the container itself, and the host's loopback is not reachable from a bridge."
            ),
            remedy=ollama_host_remedy(),
        )
    return Finding("ollama.bind", Status.OK, _("listening on {addresses}").format(addresses=shown))


def _names(model: dict[str, object]) -> set[str]:
    names = {str(model.get("name") or ""), str(model.get("model") or "")} - {""}
    return names | {n.removesuffix(":latest") for n in names}


def ollama_models(facts: Facts) -> Finding:
    answer = facts.ollama()
    if not answer.ok:
        raise Skip(_("needs ollama.host"))
    try:
        rows = facts.credentials()
    except HandlerError as exc:
        raise Skip(_("needs dify.base_url ({error})").format(error=exc)) from None
    configured = sorted({r.model for r in rows})
    pulled: set[str] = set()
    for model in answer.models:
        pulled |= _names(model)
    if not configured:
        return Finding(
            "ollama.models",
            Status.WARN,
            _("no Ollama model is configured in Dify"),
            detail="pulled: "
            + (", ".join(sorted(str(m.get("name", "?")) for m in answer.models)) or "none"),
            remedy=_(
                "Add one in Dify: Settings -> Model Provider -> Ollama -> Add Model, "
                "base URL http://host.docker.internal:11434."
            ),
        )
    missing = [m for m in configured if m not in pulled and m.removesuffix(":latest") not in pulled]
    loaded = sorted({str(m.get("name")) for m in answer.loaded})
    detail = (
        f"configured in Dify: {', '.join(configured)}; pulled: "
        f"{', '.join(sorted(str(m.get('name')) for m in answer.models)) or 'none'}; "
        f"loaded now: {', '.join(loaded) or 'none'}"
    )
    if missing:
        return Finding(
            "ollama.models",
            Status.FAIL,
            _("configured in Dify but not pulled in Ollama: {models}").format(
                models=", ".join(missing)
            ),
            detail=detail + ' (Dify shows: model "x" not found, try pulling it first)',
            remedy=_(
                "{commands} (or fix the model name in Dify to one from `ollama list`)."
            ).format(commands="; ".join(f"`ollama pull {m}`" for m in missing)),
        )
    return Finding(
        "ollama.models",
        Status.OK,
        _("all {count} configured models pulled").format(count=len(configured)),
        detail,
    )
