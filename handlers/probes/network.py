"""Probes from inside the containers that call Ollama: name resolution, reachability, proxies."""

from __future__ import annotations

import ipaddress
import re

from config.i18n import gettext as _
from handlers import container_exec
from handlers.facts import Facts, Skip
from handlers.layout import KIND_ENV_FILES
from handlers.parallel import parallel_map
from handlers.probes.ollama import ollama_host_remedy
from handlers.results import Finding, Status
from handlers.urls import host_of, is_ip, is_loopback_host, root_of, without_credentials

GATEWAY_NAME = "host.docker.internal"


def extra_hosts_remedy() -> str:
    return _(
        'Add `extra_hosts: ["host.docker.internal:host-gateway"]` to plugin_daemon, api, worker '
        "and worker_beat in docker-compose.override.yaml next to Dify's compose file "
        "(`dify-ollama fix-env` writes it), then recreate them (`dify-ollama restart`)."
    )


def _callers(facts: Facts) -> list[tuple[str, str]]:
    """(service, container id) of the running model callers; Skip when none runs."""
    running = []
    for service in facts.model_callers():
        try:
            running.append((service, facts.running(service)))
        except Skip:
            continue
    if not running:
        raise Skip(_("needs dify.containers (no plugin_daemon, api or worker is running)"))
    return running


def _declares_gateway(facts: Facts, service: str) -> bool:
    """The compose files map the gateway name, but the running container lacks the mapping:
    it was created before the override and needs recreating."""
    try:
        config = facts.compose().services.get(service)
        info = facts.project().container(service)
    except Skip:
        return False
    if not config or info is None:
        return False
    declared = any(h.startswith(GATEWAY_NAME + ":") for h in config.extra_hosts)
    hosts = (facts.inspect(info.id).get("HostConfig") or {}).get("ExtraHosts") or []
    present = any(str(h).startswith(GATEWAY_NAME + ":") for h in hosts)
    return declared and not present


def container_dns(facts: Facts) -> Finding:
    callers = _callers(facts)
    facts.prefetch_surveys()
    names = [h for h in facts.dify_hosts() if not is_ip(h)]
    if not names:
        return Finding(
            "container.dns",
            Status.OK,
            _("Dify's Ollama URL uses an IP address; no name to resolve"),
        )
    jobs = [(service, cid, name) for service, cid in callers for name in names]

    def resolve(job: tuple[str, str, str]) -> tuple[str, str, container_exec.Resolution]:
        service, cid, name = job
        return service, name, facts.resolution(cid, name)

    results = parallel_map(resolve, jobs)
    lines, failed = [], []
    for service, name, res in results:
        if res.resolved:
            lines.append(f"{service}: {name} -> {', '.join(res.addresses)} ({res.method})")
        else:
            lines.append(f"{service}: {name} does not resolve ({res.method}: {res.error})")
            failed.append((service, name))
    if failed:
        services = list(dict.fromkeys(s for s, _ in failed))
        gateway = any(name == GATEWAY_NAME for _, name in failed)
        stale = [s for s in services if _declares_gateway(facts, s)]
        if stale:
            remedy = _(
                "The compose files already map {name} for {services}, but the running "
                "containers were created before: recreate them (`dify-ollama restart`)."
            ).format(name=GATEWAY_NAME, services=", ".join(stale))
        elif gateway:
            remedy = extra_hosts_remedy()
        else:
            remedy = _("Use a name that resolves inside the containers, or the host's IP address.")
        return Finding(
            "container.dns",
            Status.FAIL,
            _("{names} does not resolve in {services}").format(
                names=", ".join(sorted({n for _s, n in failed})), services=", ".join(services)
            ),
            detail="; ".join(lines)
            + (" (on a Linux engine this name exists only with host-gateway)" if gateway else ""),
            remedy=remedy,
            service=services[0],
            fixable=gateway and not stale,
        )
    return Finding(
        "container.dns",
        Status.OK,
        _("{names} resolves in {services}").format(
            names=", ".join(names), services=", ".join(s for s, _c in callers)
        ),
        "; ".join(lines),
    )


def _reach_remedy(facts: Facts, url: str, probe: container_exec.HttpProbe) -> tuple[str, bool]:
    host = host_of(url)
    if probe.error == "dns":
        return extra_hosts_remedy(), host == GATEWAY_NAME
    if probe.error == "proxy":
        return _("A proxy variable in the container captures this URL: see container.proxy."), False
    if probe.error == "refused":
        if is_loopback_host(host):
            return (
                _(
                    "{url} points at the container itself. Set the Ollama base URL in Dify "
                    "(Settings -> Model Provider -> Ollama) to http://host.docker.internal:11434 "
                    "(`dify-ollama fix-env` rewrites it)."
                ).format(url=url),
                True,
            )
        return (
            _(
                "The host refuses connections from containers: Ollama is down, on another port, "
                "or bound to 127.0.0.1 only. "
            )
            + ollama_host_remedy(),
            False,
        )
    if probe.error == "timeout":
        host_ok = facts.ollama().ok
        if host_ok:
            return (
                _(
                    "Ollama answers on the host but not from containers: a host firewall drops "
                    "traffic from the Docker bridges. Allow it, e.g. "
                    "`sudo ufw allow from 172.16.0.0/12 to any port 11434 proto tcp` or "
                    "`sudo iptables -I INPUT -s 172.16.0.0/12 -p tcp --dport 11434 -j ACCEPT`."
                ),
                False,
            )
        return (
            _(
                "Ollama does not answer at all (hung or overloaded): restart it "
                "(`sudo systemctl restart ollama`)."
            ),
            False,
        )
    if probe.status == 404:
        return _("Something answers at that address, but not Ollama's API: check the port."), False
    return _("Check Ollama's logs (`journalctl -u ollama`)."), False


def proxy_for(env: dict[str, str], url: str) -> str | None:
    """The proxy Python's requests would use for url with this environment, if any."""
    lower = {k.lower(): v for k, v in env.items() if v}
    scheme = "https" if url.startswith("https") else "http"
    proxy = lower.get(f"{scheme}_proxy") or lower.get("all_proxy")
    if not proxy:
        return None
    no_proxy = ",".join(v for k, v in env.items() if k.lower() == "no_proxy" and v)
    return None if no_proxy_covers(no_proxy, host_of(url)) else proxy


def container_reach(facts: Facts) -> Finding:
    callers = _callers(facts)
    # The surveys' URLs are mostly known before the database answers: start them now.
    facts.prefetch_surveys()
    urls = facts.dify_urls()[:3]
    jobs = [(service, cid, u.url) for service, cid in callers for u in urls]

    def get(job: tuple[str, str, str]) -> tuple[str, str, container_exec.HttpProbe]:
        service, cid, url = job
        target = root_of(url) + "/api/version"
        host = host_of(url)
        if not is_ip(host):
            # A name that does not resolve would only show as a slow timeout in some images.
            res = facts.resolution(cid, host)
            if not res.resolved:
                why = f"{host} does not resolve ({res.method}: {res.error})"
                return (
                    service,
                    url,
                    container_exec.HttpProbe(target, "none", None, "", "dns", why, 0),
                )
        env = facts.container_env(cid)
        probe = facts.http_in(service, cid, target, container_exec.tool_proxy_env(env) or None)
        if not probe.ok and probe.status is None and proxy_for(env, url):
            probe = container_exec.HttpProbe(
                probe.url, probe.tool, None, "", "proxy", probe.error_text, probe.latency_ms
            )
        return service, url, probe

    results = parallel_map(get, jobs)
    lines, failed = [], []
    for service, url, probe in results:
        shown = without_credentials(url)
        if probe.ok:
            lines.append(
                f"{service} -> {shown}: HTTP {probe.status} in {probe.latency_ms} ms ({probe.tool})"
            )
        else:
            why = f"HTTP {probe.status}" if probe.status else f"{probe.error}"
            text = f" ({probe.error_text[:160]})" if probe.error_text else ""
            lines.append(f"{service} -> {shown}: {why}{text} via {probe.tool}")
            failed.append((service, url, probe))
    sources = ", ".join(sorted({u.source for u in urls}))
    metrics = reach_metrics(results)
    if failed:
        service, url, probe = failed[0]
        remedy, fixable = _reach_remedy(facts, url, probe)
        return Finding(
            "container.reach",
            Status.FAIL,
            _("Ollama unreachable from {services} at {url} ({error})").format(
                services=", ".join(dict.fromkeys(s for s, _u, _p in failed)),
                url=without_credentials(url),
                error=probe.error or f"HTTP {probe.status}",
            ),
            detail="; ".join(lines) + f" [URL from {sources}]",
            remedy=remedy,
            service=service,
            fixable=fixable,
            metrics=metrics,
        )
    slowest = max(p.latency_ms for _, _, p in results)
    return Finding(
        "container.reach",
        Status.OK,
        _("Ollama answers from {services} (slowest {ms} ms)").format(
            services=", ".join(s for s, _c in callers), ms=slowest
        ),
        "; ".join(lines) + f" [URL from {sources}]",
        metrics=metrics,
    )


def reach_metrics(results: list[tuple[str, str, container_exec.HttpProbe]]) -> dict[str, float]:
    """`<service>_ms`: the slowest answer from each caller that got one; `slowest_ms` over all."""
    per_service: dict[str, float] = {}
    for service, _url, probe in results:
        if probe.ok:
            key = f"{service}_ms"
            per_service[key] = max(per_service.get(key, 0.0), float(probe.latency_ms))
    if per_service:
        per_service["slowest_ms"] = max(per_service.values())
    return per_service


PROXY_KEYS = ("http_proxy", "https_proxy", "all_proxy")


def no_proxy_covers(no_proxy: str, host: str) -> bool:
    """The NO_PROXY rules of curl/requests/httpx: '*', names, .domain suffixes, IPs, CIDRs."""
    host = host.lower().strip("[]")
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry = entry.split(":")[0] if entry.count(":") == 1 else entry
        if "/" in entry:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        bare = entry.lstrip(".")
        if host == bare or host.endswith("." + bare):
            return True
    return False


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")


def proxy_endpoint(value: str) -> str:
    """Where a proxy variable points, and nothing else: `scheme://host:port` (or `host:port`).

    Built by cutting, not by parsing: proxy URLs are often written without a scheme, and with
    an unencoded `/`, `#` or `@` in the password, which makes a URL parser put part of the
    password into the host or the path. The credentials end at the last `@`, the host at the
    first `/`, `?` or `#` after it.
    """
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        scheme, rest = "", text
    host = re.split(r"[/?#]", rest.rsplit("@", 1)[-1], maxsplit=1)[0][:100]
    name, colon, port = host.rpartition(":")
    if colon and not port.isdigit() and not host.endswith("]"):
        host = f"{name}:(not a port)"  # `user:password` with no `@` is not a host:port
    if not host or host.startswith(":"):
        return "(no host)"
    return f"{scheme}://{host}" if scheme else host


def _proxy_place(facts: Facts) -> str:
    """Where a NO_PROXY change reaches the containers in this layout."""
    try:
        kind = facts.layout().kind
    except Skip:
        kind = ""
    if kind == KIND_ENV_FILES:
        return _("in .env (Dify 1.14+ reads it last, after envs/*.env, into every service)")
    return _(
        "in the compose override (`environment:`; .env only reaches keys the compose file names)"
    )


def container_proxy(facts: Facts) -> Finding:
    callers = _callers(facts)
    urls = facts.dify_urls()[:3]
    lines, captured = [], []
    for service, cid in callers:
        env = facts.container_env(cid)
        lower = {k.lower(): v for k, v in env.items() if v}
        no_proxy = ",".join(v for k, v in env.items() if k.lower() == "no_proxy" and v)
        for u in urls:
            scheme = "https" if u.url.startswith("https") else "http"
            host = host_of(u.url)
            proxy = proxy_for(env, u.url)
            if proxy is None:
                configured = lower.get(f"{scheme}_proxy") or lower.get("all_proxy")
                if configured:
                    lines.append(
                        f"{service}: proxy {proxy_endpoint(configured)} set, NO_PROXY covers {host}"
                    )
                continue
            lines.append(
                f"{service}: {scheme.upper()}_PROXY={proxy_endpoint(proxy)} captures "
                f"{host} (NO_PROXY={no_proxy or 'unset'})"
            )
            captured.append((service, host))
    if captured:
        hosts = sorted({h for _, h in captured})
        services = list(dict.fromkeys(s for s, _ in captured))
        return Finding(
            "container.proxy",
            Status.FAIL,
            _("a proxy variable captures {hosts} in {services}").format(
                hosts=", ".join(hosts), services=", ".join(services)
            ),
            detail="; ".join(lines) + " (requests from Dify go to the proxy: ProxyError)",
            remedy=_(
                "Add {hosts} to NO_PROXY (and no_proxy) for {services} {place}, then "
                "`dify-ollama restart`."
            ).format(
                hosts=",".join(hosts), services=", ".join(services), place=_proxy_place(facts)
            ),
            service=services[0],
        )
    return Finding(
        "container.proxy",
        Status.OK,
        _("no proxy variable captures Dify's Ollama URL"),
        "; ".join(lines) or "no HTTP(S)_PROXY/ALL_PROXY set in " + ", ".join(s for s, _ in callers),
    )
