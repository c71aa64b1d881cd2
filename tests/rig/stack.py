"""Look-alike Dify compose projects, built from each release's real docker-compose.yaml and env.

Releases (tests/data/dify-*/, real upstream files): "0.x" (0.10.2: `x-shared-env` into api and
worker, DB service `db`, no plugin_daemon), "1.9.1" (`x-shared-env` into api, worker,
worker_beat, plugin_daemon; DB `db`), "1.13.3" (the same anchor; DB `db_postgres` by profile)
and "1.15.0" (`x-shared-*-config` anchors carrying `env_file` lists of `envs/**/*.env`
(`required: false`) then `./.env` (required); `db_postgres` or `db_mysql` by COMPOSE_PROFILES;
init_permissions, api_websocket, agent_backend, local_sandbox).

The written docker-compose.yaml keeps the release's top-level `x-*` anchor blocks verbatim
(comments and quoting kept) and merges them with real YAML merge keys, and keeps the real
service names, environments, env_file lists, profiles, healthcheck commands, networks, ports
and depends_on of the services it runs. It only swaps images for local ones (no pulls), runs
small stand-in programs (tests/rig/images/), shortens long healthcheck intervals, drops bind
mounts of folders the look-alike does not have, and for Compose v1 strips what v1.29.2 rejects
(`depends_on.required`, healthcheck keys beside `disable`). `.env` is the release's real
.env.example with a few lines replaced; 1.15.0 also gets the real `envs/**/*.env.example`.
Everything runs on the private engine (DOCKER_HOST), with the Compose flavour the test picks
(tests/rig/compose.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import yaml
from docker.models.containers import Container

from handlers import exec_stream
from tests.rig.compose import FLAVOURS, Compose, ComposeMissing, compose_for
from tests.rig.dify_db import (
    DEFAULT_TENANT_ID,
    OLLAMA_PROVIDER,
    OLLAMA_PROVIDER_0X,
    SCHEMAS,
    OllamaRow,
    RowLike,
    as_row,
    cache_keys_for,
    encrypted_secret,
    parse_rows,
    rows_query,
    rows_sql,
    schema_sql,
)
from tests.rig.fake_ollama import EMBED_MODEL
from tests.rig.plugin_db import (
    PluginInstall,
    clear_plugins_sql,
    plugin_rows_sql,
    plugin_schema_sql,
)

__all__ = [
    "DEFAULT_TENANT_ID",
    "FLAVOURS",
    "OLLAMA_PROVIDER",
    "OLLAMA_PROVIDER_0X",
    "RELEASES",
    "SCHEMAS",
    "ComposeMissing",
    "DifyStack",
    "OllamaRow",
    "PluginInstall",
    "Release",
    "RowLike",
    "StackError",
    "as_row",
    "build_compose",
    "cache_keys_for",
    "compose_env",
    "docker_host",
    "encrypted_secret",
    "healthy_rows",
    "healthy_stack",
    "release_of",
    "rows_sql",
    "write_env",
]

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
DIFY_VERSION = "1.13.3"
REFERENCE_DIR = Path(os.environ.get("DIFY_REFERENCE_DIR", DATA_DIR / f"dify-{DIFY_VERSION}"))
IMAGES_DIR = Path(__file__).resolve().parent / "images"
PRIVATE_DOCKER_HOST = "unix:///run/dify-ollama-test-engine/docker.sock"

DEBIAN_IMAGE = "dify-ollama-test/debian:1"
BUSYBOX_IMAGE = "dify-ollama-test/busybox:1"
PYTHON_ONLY_IMAGE = "dify-ollama-test/python-only:1"
MARIADB_IMAGE = "dify-ollama-test/mariadb:1"

# Dify 1.13.3, the rig's first layout (module-level names kept for the tests written for it).
SERVICES = ("api", "worker", "worker_beat", "plugin_daemon", "db_postgres", "redis", "nginx")
# Services that merge Dify's shared environment (and call models).
SHARED_ENV_SERVICES = ("api", "worker", "worker_beat", "plugin_daemon")
SHARED_ANCHOR = "shared-api-worker-env"
MERGE_MARK = "<<rig-merge>>"

HOST_GATEWAY = "host.docker.internal:host-gateway"
PLUGIN_DATABASE = "dify_plugin"  # DB_PLUGIN_DATABASE's default
API_UNHEALTHY_FLAG = "/tmp/rig-unhealthy"  # inside the api container (images/httpd.py)
HOST_GATEWAY_OVERRIDE: dict[str, Any] = {
    "services": {s: {"extra_hosts": [HOST_GATEWAY]} for s in SHARED_ENV_SERVICES}
}
# The services the product maps host-gateway for (handlers GATEWAY_SERVICES), where they exist.
GATEWAY_SERVICES = ("plugin_daemon", "api", "worker", "worker_beat")


class StackError(RuntimeError):
    """A compose or exec step of the rig failed; the message carries its output."""


# --------------------------------------------------------------------------------------------
# Releases
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Release:
    name: str  # the version the image tags say
    data_dir: Path  # tests/data/dify-<version>: the real files
    services: tuple[str, ...]  # what the look-alike runs (both DB services on 1.15.0)
    db_services: dict[str, str]  # metadata DB kind -> service
    model_callers: tuple[str, ...]  # services that call Ollama (host-gateway goes there)
    schema: str  # the credential tables' layout (tests/rig/dify_db.py)
    provider_name: str  # Ollama's provider_name in those tables
    default_compose: str
    v1_ok: bool  # Compose v1 can run this layout
    one_shot: tuple[str, ...] = ()  # services that run once and exit 0
    storage_dir: bool = False  # ./volumes/app/storage exists (init_permissions' mount)
    has_envs: bool = False  # envs/**/*.env.example next to .env.example

    @property
    def db_kinds(self) -> tuple[str, ...]:
        return tuple(self.db_services)


RELEASES: dict[str, Release] = {
    "0.x": Release(
        name="0.10.2",
        data_dir=DATA_DIR / "dify-0.10.2",
        services=("api", "worker", "db", "redis", "nginx"),
        db_services={"postgresql": "db"},
        model_callers=("api", "worker"),
        schema="0.x",
        provider_name=OLLAMA_PROVIDER_0X,
        default_compose="v2",
        v1_ok=True,
    ),
    "1.9.1": Release(
        name="1.9.1",
        data_dir=DATA_DIR / "dify-1.9.1",
        services=("api", "worker", "worker_beat", "plugin_daemon", "db", "redis", "nginx"),
        db_services={"postgresql": "db"},
        model_callers=("plugin_daemon", "api", "worker", "worker_beat"),
        # provider_models lost encrypted_config in migration 0e154742a5fa (2025-08, 1.8.0)
        schema="1.13",
        provider_name=OLLAMA_PROVIDER,
        default_compose="v2",
        v1_ok=True,
    ),
    "1.13.3": Release(
        name="1.13.3",
        data_dir=REFERENCE_DIR,
        services=SERVICES,
        db_services={"postgresql": "db_postgres"},
        model_callers=("plugin_daemon", "api", "worker", "worker_beat"),
        schema="compat",  # the rig's first default; schema="1.13" is the exact one
        provider_name=OLLAMA_PROVIDER,
        default_compose="v1",  # what the rig always ran it with
        v1_ok=True,
    ),
    "1.15.0": Release(
        name="1.15.0",
        data_dir=DATA_DIR / "dify-1.15.0",
        services=(
            "init_permissions",
            "api",
            "api_websocket",
            "worker",
            "worker_beat",
            "plugin_daemon",
            "agent_backend",
            "local_sandbox",
            "db_postgres",
            "db_mysql",
            "redis",
            "nginx",
        ),
        db_services={"postgresql": "db_postgres", "mysql": "db_mysql"},
        model_callers=("plugin_daemon", "api", "worker", "worker_beat"),
        schema="1.13",
        provider_name=OLLAMA_PROVIDER,
        default_compose="v2",
        v1_ok=False,  # env_file `required: false` needs Compose >= 2.24
        one_shot=("init_permissions",),
        storage_dir=True,
        has_envs=True,
    ),
}
_ALIASES = {"0.10.2": "0.x", "0": "0.x", "1.15": "1.15.0", "1.13": "1.13.3", "1.9": "1.9.1"}


def release_of(name: str | Release) -> Release:
    if isinstance(name, Release):
        return name
    key = _ALIASES.get(name, name)
    if key not in RELEASES:
        raise ValueError(f"release must be one of {sorted(RELEASES)}, not {name!r}")
    return RELEASES[key]


def _standins(release: Release) -> dict[str, dict[str, Any]]:
    """What each kept service runs instead of the upstream image (scripts mounted at /rig).

    db and redis keep their upstream `command` (postgres -c ..., mysqld options,
    redis-server ...); init_permissions keeps its whole upstream script.
    """
    api = {
        "image": DEBIAN_IMAGE,
        "entrypoint": ["python3", "-u", "/rig/httpd.py"],
        "command": ["api", release.name],
    }
    postgres = {"image": DEBIAN_IMAGE, "entrypoint": ["sh", "/rig/db_init.sh"]}
    return {
        "api": api,
        "api_websocket": dict(api),
        "worker": {
            "image": PYTHON_ONLY_IMAGE,
            "entrypoint": ["python3", "-u", "/rig/sleeper.py"],
            "command": ["worker"],
        },
        "worker_beat": {
            "image": DEBIAN_IMAGE,
            "entrypoint": ["python3", "-u", "/rig/sleeper.py"],
            "command": ["beat"],
        },
        "plugin_daemon": {"image": BUSYBOX_IMAGE, "entrypoint": ["sh", "/rig/plugin_daemon.sh"]},
        "agent_backend": {
            "image": PYTHON_ONLY_IMAGE,
            "entrypoint": ["python3", "-u", "/rig/httpd.py"],
            "command": ["agent_backend"],
        },
        "local_sandbox": {
            "image": DEBIAN_IMAGE,
            "entrypoint": ["python3", "-u", "/rig/httpd.py"],
            "command": ["local_sandbox"],
        },
        "init_permissions": {"image": BUSYBOX_IMAGE},
        "db": postgres,
        "db_postgres": postgres,
        "db_mysql": {"image": MARIADB_IMAGE, "entrypoint": ["sh", "/rig/mysql_init.sh"]},
        "redis": {"image": DEBIAN_IMAGE},
        "nginx": {
            "image": DEBIAN_IMAGE,
            "entrypoint": ["python3", "-u", "/rig/httpd.py"],
            "command": ["nginx"],
        },
    }


# Upstream polls these every 30 s (redis: the engine default); tests cannot wait that long.
_FAST_HEALTH = ("api", "redis", "local_sandbox")


# --------------------------------------------------------------------------------------------
# Building the project folder from Dify's real files
# --------------------------------------------------------------------------------------------
class _MarkMergeLoader(yaml.SafeLoader):
    """SafeLoader that leaves `<<: *anchor` as a marker naming the anchor instead of
    flattening it, so the written file merges the real anchor block."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_names: dict[int, str] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            anchor = self.peek_event().anchor
            node = super().compose_node(parent, index)
            self.alias_names[id(node)] = anchor
            return node
        return super().compose_node(parent, index)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        for i, (key, value) in enumerate(node.value):
            if key.tag == "tag:yaml.org,2002:merge":
                node.value[i] = (
                    yaml.ScalarNode("tag:yaml.org,2002:str", MERGE_MARK),
                    yaml.ScalarNode("tag:yaml.org,2002:str", self.alias_names[id(value)]),
                )
        super().flatten_mapping(node)


_ANCHOR_BLOCK = re.compile(r"^x-[\w-]+:[^\n]*\n(?:(?:[ \t][^\n]*)?\n)*", re.M)


def _anchor_blocks(text: str) -> str:
    """The upstream top-level `x-...: &anchor` blocks, verbatim (comments and quoting kept)."""
    blocks = [m.group(0) for m in _ANCHOR_BLOCK.finditer(text)]
    if not blocks:
        raise StackError("no x- anchor block found in Dify's docker-compose.yaml")
    return "".join(b if b.endswith("\n\n") else b + "\n" for b in blocks)


def _shared_env_block(text: str) -> str:
    """The upstream `x-shared-env: &anchor` block, verbatim (comments and quoting kept)."""
    m = re.search(r"^x-shared-env: &" + SHARED_ANCHOR + r"\n(.*?)(?=^\S)", text, re.M | re.S)
    if not m:
        raise StackError("x-shared-env anchor not found in Dify's docker-compose.yaml")
    return m.group(0)


def _strip_depends_on(dep: Any, kept: Sequence[str], v1: bool = True) -> Any:
    if isinstance(dep, list):
        return [d for d in dep if d in kept]
    out = {}
    for name, cond in dep.items():
        if name not in kept:
            continue
        cond = dict(cond or {})
        if v1:
            cond.pop("required", None)  # Compose >= 2.20 only; v1.29.2 rejects the key
            cond.pop("restart", None)
        out[name] = cond
    return out


def _existing_volumes(vols: list[Any], project_dir: Path) -> list[Any]:
    keep = []
    for v in vols:
        src = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
        if "$" in src:
            continue  # a host folder chosen by a variable (MYSQL_HOST_VOLUME): data stays inside
        if src.startswith((".", "/")) and not (project_dir / src).exists():
            continue  # bind mount of a folder this look-alike does not have
        keep.append(v)
    return keep


def build_compose(
    project_dir: Path,
    plugin_daemon_env: Mapping[str, str] | None = None,
    reference_dir: Path | None = None,
    dns: Sequence[str] = (),
    *,
    release: str | Release = "1.13.3",
    compose: str | None = None,
) -> str:
    """Text of the look-alike docker-compose.yaml for a project folder (holding ./rig).

    `dns` (not in upstream): resolver for names the engine's embedded DNS does not know; see
    OfflineDns for why an offline engine needs one. `compose`: the flavour that will run it
    (default: the release's); "v1" strips what Compose v1.29.2 rejects.
    """
    rel = release_of(release)
    flavour = compose or rel.default_compose
    v1 = flavour == "v1"
    text = ((reference_dir or rel.data_dir) / "docker-compose.yaml").read_text()
    loader = _MarkMergeLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    resolved = yaml.safe_load(text)["services"]  # merges applied: for the networks used
    upstream = data["services"]
    standins = _standins(rel)
    services: dict[str, Any] = {}
    for name in rel.services:
        svc = dict(upstream[name])
        svc.update(standins[name])
        if "depends_on" in svc:
            svc["depends_on"] = _strip_depends_on(svc["depends_on"], rel.services, v1)
            if not svc["depends_on"]:
                del svc["depends_on"]
        svc["volumes"] = [*_existing_volumes(svc.get("volumes", []), project_dir), "./rig:/rig:ro"]
        hc = svc.get("healthcheck")
        if hc is not None or name == "redis":
            hc = dict(hc or {})
            if name in _FAST_HEALTH:
                # retries 3 (upstream api; engine default for redis) and a short start period:
                # a broken api turns unhealthy within seconds, not after 30 s of grace.
                hc.update(interval="1s", timeout="3s", retries=3, start_period="2s")
            if "disable" in hc and v1:
                # Compose v1 rejects `disable` combined with other keys (worker, worker_beat).
                hc = {"disable": hc["disable"]}
            svc["healthcheck"] = hc
        if name == "plugin_daemon" and plugin_daemon_env:
            svc["environment"] = {**svc["environment"], **plugin_daemon_env}
        svc.pop("extra_hosts", None)  # none upstream; the override adds it
        if dns:
            svc["dns"] = list(dns)
        services[name] = svc
    used = {n for s in rel.services for n in (resolved[s].get("networks") or []) if n != "default"}
    networks = {n: data["networks"][n] for n in sorted(used)}
    body = yaml.safe_dump(
        {"services": services, **({"networks": networks} if networks else {})},
        sort_keys=False,
        default_flow_style=False,
        width=1000,
        allow_unicode=True,
    )
    body = re.sub(
        r"^(\s*)" + re.escape(MERGE_MARK) + r": ([\w-]+)$", r"\1<<: *\2", body, flags=re.M
    )
    header = (
        f"# Look-alike of Dify {rel.name}'s docker/docker-compose.yaml, generated by\n"
        "# tests/rig/stack.py from the real file: same anchors, services, env; local images.\n"
        + (
            "# `dns:` is not upstream: an offline engine's NXDOMAIN responder (OfflineDns).\n"
            if dns
            else ""
        )
    )
    anchors = _shared_env_block(text) if rel.name == DIFY_VERSION else _anchor_blocks(text)
    return header + anchors + "\n" + body


def write_env(src: Path, dest: Path, overrides: Mapping[str, str | None]) -> None:
    """Copy .env.example to .env replacing whole `KEY=` lines; None deletes; new keys appended.

    Line replacement (not a dotenv writer) so every other byte stays identical to upstream.
    """
    lines = src.read_text().splitlines(keepends=True)
    todo = dict(overrides)
    out = []
    for line in lines:
        key = line.split("=", 1)[0] if "=" in line and not line.startswith("#") else None
        if key is not None and key in todo:
            value = todo.pop(key)
            if value is not None:
                out.append(f"{key}={value}\n")
            continue
        out.append(line)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    out.extend(f"{k}={v}\n" for k, v in todo.items() if v is not None)
    dest.write_text("".join(out))


def env_example_keys(release: str | Release) -> set[str]:
    text = (release_of(release).data_dir / ".env.example").read_text()
    return {ln.split("=", 1)[0] for ln in text.splitlines() if "=" in ln and ln[:1] not in "# "}


def optional_env_files(release: str | Release) -> list[str]:
    """The release's `envs/**/*.env` names (relative to envs/), from their .example files."""
    envs = release_of(release).data_dir / "envs"
    if not envs.is_dir():
        return []
    return sorted(str(p.relative_to(envs))[: -len(".example")] for p in envs.rglob("*.env.example"))


class OfflineDns:
    """A resolver on the engine's bridge gateway that answers NXDOMAIN to every query.

    On this offline engine (--ip-masq=false) the embedded DNS of a compose network forwards
    unknown names to the host's resolver from the container's address; no reply ever comes back,
    so every failed lookup (host.docker.internal without host-gateway, a proxy host name) hangs
    10 s in glibc instead of failing at once as on a Linux host with working DNS. Pointing the
    services' `dns` here restores the real symptom, fast: "[Errno -2] Name or service not known",
    busybox "bad address", curl "Could not resolve host". Names of services and extra_hosts
    entries are still answered by the engine before this is asked.
    One per process, shared by every stack; SO_REUSEPORT lets concurrent test runs share :53.
    """

    _lock = threading.Lock()
    _started: dict[str, socket.socket] = {}

    @classmethod
    def ensure(cls, address: str) -> bool:
        with cls._lock:
            if address in cls._started:
                return True
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                sock.bind((address, 53))
            except OSError:
                sock.close()
                return False
            cls._started[address] = sock
            threading.Thread(target=cls._serve, args=(sock,), daemon=True, name="rig-dns").start()
            return True

    @staticmethod
    def answer(query: bytes) -> bytes | None:
        if len(query) < 12:
            return None
        (flags,) = struct.unpack("!H", query[2:4])
        (qdcount,) = struct.unpack("!H", query[4:6])
        end = 12
        if qdcount:
            while end < len(query) and query[end]:
                end += query[end] + 1
            end += 5  # root label, QTYPE, QCLASS
        # QR, same opcode and RD, RA, RCODE 3 (NXDOMAIN); echo the first question only.
        rflags = 0x8000 | (flags & 0x7900) | 0x0080 | 3
        header = struct.pack("!HHHHH", rflags, min(qdcount, 1), 0, 0, 0)
        return query[:2] + header + query[12:end]

    @classmethod
    def _serve(cls, sock: socket.socket) -> None:
        while True:
            try:
                data, peer = sock.recvfrom(1500)
                reply = cls.answer(data)
                if reply:
                    sock.sendto(reply, peer)
            except OSError:
                return


def bridge_gateway(client: docker.DockerClient) -> str | None:
    """The host's address on the engine's default bridge (what host-gateway maps to).

    dockerd 20.10 leaves `Gateway` out of the default bridge's IPAM config when it adopts a
    bridge that already has an address (a second start, or `--bridge NAME`): then the address
    is the bridge interface's own, read from the host, else the subnet's first host.
    """
    try:
        attrs = client.networks.get("bridge").attrs
    except docker.errors.DockerException:
        return None
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    for cfg in configs:
        if cfg.get("Gateway"):
            return str(cfg["Gateway"])
    device = (attrs.get("Options") or {}).get("com.docker.network.bridge.name")
    if device and shutil.which("ip"):
        done = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", device],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        for line in done.stdout.splitlines():
            fields = line.split()
            if "inet" in fields:
                return fields[fields.index("inet") + 1].split("/", 1)[0]
    for cfg in configs:
        if cfg.get("Subnet"):
            network = ipaddress.ip_network(str(cfg["Subnet"]), strict=False)
            return str(next(network.hosts()))
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or PRIVATE_DOCKER_HOST


def compose_env(engine: str | None = None) -> dict[str, str]:
    """Environment for Compose: only what it needs (`engine`: a DOCKER_HOST other than the
    private engine's, e.g. a test host's own dockerd).

    Compose gives the caller's environment precedence over .env, so passing os.environ through
    would let any OPENAI_API_BASE, COMPOSE_* or DB_* of the test process leak into the stack.
    """
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DOCKER_HOST": engine or docker_host()}
    # Not LANG/LC_ALL: Dify 1.9.1's shared env takes ${LANG:-...} and .env sets it, so the
    # caller's locale would override .env in every container (as it does for a user's shell).
    for k in ("HOME", "TMPDIR"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def healthy_rows(release: str | Release, ollama_url: str) -> list[OllamaRow]:
    """The healthy state's credential rows for a layout, all Ollama ones at `ollama_url`.

    1.13.3 keeps its single row (the tests written for it count on that). The others carry what
    a rewrite must leave alone: an encrypted `api_key` (Ollama plugin 1.0), a load-balancing
    config with its own copy of the URL, and another provider's row at a loopback URL.
    """
    rel = release_of(release)
    if rel.name == DIFY_VERSION:
        return [OllamaRow(base_url=ollama_url)]
    main_table = "provider_models" if rel.schema == "0.x" else "provider_model_credentials"
    provider = rel.provider_name
    llm = OllamaRow(base_url=ollama_url, provider_name=provider, table=main_table)
    secret = {} if rel.schema == "0.x" else {"api_key": encrypted_secret(f"{rel.name}/embed")}
    embed = OllamaRow(
        base_url=ollama_url,
        provider_name=provider,
        table=main_table,
        model_type="text-embedding",
        model_name=EMBED_MODEL,  # an embedding model: Ollama refuses embeddings from an LLM
        credential_name="with api key",
        config=secret,
    )
    balanced = OllamaRow(
        base_url=ollama_url,
        provider_name=provider,
        table="load_balancing_model_configs",
        credential_name="ollama-2",
        config=secret,
        credential_id=None if rel.schema == "0.x" else llm.id,
        credential_source_type=None if rel.schema == "0.x" else "custom_model",
    )
    other_provider = (
        "openai_api_compatible"
        if rel.schema == "0.x"
        else "langgenius/openai_api_compatible/openai_api_compatible"
    )
    other = OllamaRow(
        base_url="http://127.0.0.1:8000/v1",  # not Ollama: a fix must never touch it
        provider_name=other_provider,
        table=main_table,
        model_name="local-gpt",
        credential_name="vllm",
        config={"api_key": encrypted_secret(f"{rel.name}/other")},
    )
    return [llm, embed, balanced, other]


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------
class DifyStack:
    """A running look-alike Dify project on the private engine.

    DifyStack(tmp_path, project=None, env_overrides=None, ollama_rows=None,
              extra_hosts=False, plugin_daemon_env=None, client=None, offline_dns=True,
              schema=None, *, release="1.13.3", db="postgresql", compose=None,
              optional_envs=(), engine=None, netns=None)
    release: "0.x", "1.9.1", "1.13.3", "1.15.0". db: "postgresql", or "mysql" (1.15.0).
    compose: "v2" (`docker compose`), "v2-standalone" or "v1"; default: the release's
    ("v1" for 1.13.3 as always, else "v2"). optional_envs (1.15.0): names under envs/ to
    create from their .example ("core-services/shared.env"), or True for all of them.
    The project folder is `tmp_path/"docker"` (like upstream's `docker/`); compose runs with
    `-p project` since every stack's folder has the same name. engine: another DOCKER_HOST
    (a test host's own dockerd, with the images copied in), for compose and the client;
    netns: the path of the network namespace that engine runs in (its published ports).
    """

    def __init__(
        self,
        tmp_path: Path | str,
        project: str | None = None,
        env_overrides: Mapping[str, str | None] | None = None,
        ollama_rows: Iterable[RowLike] | None = None,
        extra_hosts: bool = False,
        plugin_daemon_env: Mapping[str, str] | None = None,
        client: docker.DockerClient | None = None,
        offline_dns: bool = True,
        schema: str | None = None,
        *,
        release: str | Release = "1.13.3",
        db: str = "postgresql",
        compose: str | None = None,
        optional_envs: bool | Iterable[str] = (),
        plugins: Iterable[PluginInstall] | None = None,
        engine: str | None = None,
        netns: str | None = None,
    ) -> None:
        self.engine = engine  # DOCKER_HOST of the engine it runs on (None: the private one)
        self.netns = netns  # the network namespace (path) that engine publishes ports in
        self.release = release_of(release)
        if db not in self.release.db_services:
            raise ValueError(
                f"Dify {self.release.name} has no {db!r} metadata DB "
                f"(it has {', '.join(self.release.db_kinds)})"
            )
        self.db = db
        self.db_service = self.release.db_services[db]
        self.compose_flavour = compose or self.release.default_compose
        if self.compose_flavour not in FLAVOURS:
            raise ValueError(f"compose must be one of {FLAVOURS}")
        if self.compose_flavour == "v1" and not self.release.v1_ok:
            raise ValueError(f"Dify {self.release.name} needs Compose >= 2.24; v1 cannot run it")
        self._compose: Compose | None = None
        self.dialect = "mysql" if db == "mysql" else "postgresql"
        self.schema = schema or ("1.13" if db == "mysql" else self.release.schema)
        if self.schema not in SCHEMAS:
            raise ValueError(f"schema must be one of {SCHEMAS}")
        self.dir = Path(tmp_path) / "docker"
        self.project = project or f"difyrig{secrets.token_hex(4)}"
        self.nginx_port = free_port()
        self.nginx_ssl_port = free_port()
        self.plugin_debug_port = free_port()
        keys = env_example_keys(self.release)
        defaults: dict[str, str | None] = {
            "EXPOSE_NGINX_PORT": str(self.nginx_port),
            "EXPOSE_NGINX_SSL_PORT": str(self.nginx_ssl_port),
        }
        if "EXPOSE_PLUGIN_DEBUGGING_PORT" in keys:
            defaults["EXPOSE_PLUGIN_DEBUGGING_PORT"] = str(self.plugin_debug_port)
        if db == "mysql":
            # What Dify's docs have a MySQL install set in .env.
            defaults.update(DB_TYPE="mysql", DB_HOST="db_mysql", DB_PORT="3306", DB_USERNAME="root")
        self.env_overrides: dict[str, str | None] = {**defaults, **(env_overrides or {})}
        self.initial_rows = [as_row(r) for r in (ollama_rows or [])]
        # plugin_daemon's database: the Ollama plugin installed for the default tenant.
        self.has_plugins = "plugin_daemon" in self.release.services
        default_plugins = [PluginInstall()] if self.has_plugins else []
        self.initial_plugins = list(default_plugins if plugins is None else plugins)
        self._logs_dirty: set[str] = set()
        self.plugin_daemon_env = dict(plugin_daemon_env or {})
        if optional_envs is True:
            self.optional_envs = optional_env_files(self.release)
        elif optional_envs is False:
            self.optional_envs = []
        else:
            self.optional_envs = list(optional_envs)
        self._client = client
        self.dns: list[str] = []
        if offline_dns:
            gateway = bridge_gateway(self.client)
            if gateway and OfflineDns.ensure(gateway):
                self.dns = [gateway]
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_files()
        if extra_hosts:
            self.write_override(self.host_gateway_override())
        self._snapshot = self._read_snapshot()
        self._entries = set(self.dir.iterdir())

    # -- layout -----------------------------------------------------------------------------
    @property
    def services(self) -> tuple[str, ...]:
        """The services that are part of this project (the other DB service is profiled off)."""
        other_dbs = set(self.release.db_services.values()) - {self.db_service}
        return tuple(s for s in self.release.services if s not in other_dbs)

    @property
    def long_running(self) -> tuple[str, ...]:
        return tuple(s for s in self.services if s not in self.release.one_shot)

    @property
    def model_callers(self) -> tuple[str, ...]:
        return self.release.model_callers

    def host_gateway_override(self) -> dict[str, Any]:
        """The override that maps host.docker.internal for the release's gateway services."""
        names = [s for s in GATEWAY_SERVICES if s in self.release.services]
        return {"services": {s: {"extra_hosts": [HOST_GATEWAY]} for s in names}}

    @property
    def db_password(self) -> str:
        return self.env_value("DB_PASSWORD") or "difyai123456"

    @property
    def redis_password(self) -> str:
        return self.env_value("REDIS_PASSWORD") or "difyai123456"

    def env_value(self, key: str) -> str | None:
        """A key's value in .env as written (the last assignment)."""
        value = None
        for line in self.env_path.read_text().splitlines():
            if line.startswith(f"{key}="):
                value = line.split("=", 1)[1]
        return value

    # -- files ------------------------------------------------------------------------------
    @property
    def env_path(self) -> Path:
        return self.dir / ".env"

    @property
    def compose_path(self) -> Path:
        return self.dir / "docker-compose.yaml"

    @property
    def override_path(self) -> Path:
        return self.dir / "docker-compose.override.yaml"

    @property
    def envs_dir(self) -> Path:
        return self.dir / "envs"

    def _write_files(self) -> None:
        rel = self.release
        rig = self.dir / "rig"
        rig.mkdir(exist_ok=True)
        for f in IMAGES_DIR.iterdir():
            if f.is_file():
                shutil.copy2(f, rig / f.name)
        (rig / "schema.sql").write_text(schema_sql(self.schema, self.dialect))
        (rig / "seed.sql").write_text(rows_sql(self.initial_rows, self.schema, self.dialect))
        if self.has_plugins:
            (rig / "plugin_schema.sql").write_text(plugin_schema_sql(self.dialect))
            (rig / "plugin_seed.sql").write_text(plugin_rows_sql(self.initial_plugins))
        if rel.storage_dir:
            (self.dir / "volumes" / "app" / "storage").mkdir(parents=True, exist_ok=True)
        self.compose_path.write_text(
            build_compose(
                self.dir,
                self.plugin_daemon_env,
                dns=self.dns,
                release=rel,
                compose=self.compose_flavour,
            )
        )
        write_env(rel.data_dir / ".env.example", self.env_path, self.env_overrides)
        shutil.copy2(rel.data_dir / ".env.example", self.dir / ".env.example")
        (self.dir / ".env.example").chmod(0o644)
        if rel.has_envs:
            shutil.copytree(rel.data_dir / "envs", self.envs_dir, dirs_exist_ok=True)
            for p in self.envs_dir.rglob("*"):
                p.chmod(0o755 if p.is_dir() else 0o644)
            for name in self.optional_envs:
                src = self.envs_dir / f"{name}.example"
                if not src.is_file():
                    raise ValueError(f"Dify {rel.name} has no envs/{name}.example")
                shutil.copy2(src, self.envs_dir / name)

    def write_override(self, data: Mapping[str, Any]) -> Path:
        """Write docker-compose.override.yaml (compose loads it next to docker-compose.yaml)."""
        self.override_path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
        return self.override_path

    def read_env(self) -> str:
        return self.env_path.read_text()

    def _tracked(self) -> list[Path]:
        """The project's own files (not the rig's scripts, not the services' volumes)."""
        out = []
        for p in sorted(self.dir.rglob("*")):
            rel = p.relative_to(self.dir).parts
            if rel[0] in ("rig", "volumes") or not p.is_file():
                continue
            out.append(p)
        return out

    def _read_snapshot(self) -> dict[Path, bytes | None]:
        files = {self.env_path, self.dir / ".env.example", self.compose_path, self.override_path}
        files.update(self._tracked())
        return {p: (p.read_bytes() if p.exists() else None) for p in sorted(files)}

    # -- docker -----------------------------------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.engine or docker_host(), timeout=30)
        return self._client

    @property
    def compose_command(self) -> Compose:
        if self._compose is None:
            self._compose = compose_for(self.compose_flavour)
        return self._compose

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        cmd = self.compose_command
        head = ["-p", self.project, "--project-directory", str(self.dir)]
        shown = " ".join([*cmd.argv, *head, *args])
        try:
            proc = cmd.run(
                [*head, *args], cwd=self.dir, env=compose_env(self.engine), timeout=timeout
            )
        except subprocess.TimeoutExpired as e:
            raise StackError(f"{shown} timed out after {timeout}s") from e
        if check and proc.returncode != 0:
            raise StackError(f"{shown} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc.stdout + proc.stderr

    def containers(self, service: str | None = None, all: bool = True) -> list[Container]:
        labels = [f"com.docker.compose.project={self.project}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return self.client.containers.list(all=all, filters={"label": labels})

    def container(self, service: str) -> Container:
        found = [
            c
            for c in self.containers(service)
            if c.labels.get("com.docker.compose.oneoff", "False") != "True"
        ]
        if not found:
            raise StackError(f"no container for service {service} in project {self.project}")
        found.sort(key=lambda c: c.status != "running")
        return found[0]

    def up(
        self,
        services: Sequence[str] | None = None,
        wait: bool = True,
        timeout: float = 60,
        seed_redis: bool = True,
    ) -> DifyStack:
        self.compose("up", "-d", *(services or ()), timeout=timeout + 60)
        if wait:
            self.wait_healthy(timeout, services)
            if seed_redis and (services is None or "redis" in services):
                self.seed_redis_keys(cache_keys_for(self.initial_rows))
        return self

    def down(self) -> None:
        """Remove containers, networks and volumes; safe to call twice or before up()."""
        with contextlib.suppress(StackError, ComposeMissing):
            self.compose("down", "-v", "--remove-orphans", "-t", "2", timeout=120, check=False)
        # Belt and braces: anything compose missed (e.g. after a broken file) goes by label.
        for c in self.containers():
            with contextlib.suppress(docker.errors.APIError):
                c.remove(force=True, v=True)
        for n in self.client.networks.list(
            filters={"label": f"com.docker.compose.project={self.project}"}
        ):
            with contextlib.suppress(docker.errors.APIError):
                n.remove()

    def stop(self, service: str, timeout: int = 2) -> None:
        self.compose("stop", "-t", str(timeout), service)

    def start(self, service: str) -> None:
        self.compose("start", service)

    def recreate(self, services: Sequence[str], timeout: float = 60) -> None:
        """`compose up -d --no-deps --force-recreate svc...` (re-reads .env/override)."""
        self.compose("up", "-d", "--no-deps", "--force-recreate", *services, timeout=timeout + 60)
        self.wait_healthy(timeout, services)

    def wait_healthy(self, timeout: float = 60, services: Sequence[str] | None = None) -> None:
        """Every service running, and healthy where it has a healthcheck (a one-shot service:
        exited with code 0); nginx answering."""
        want = list(services or self.services)
        deadline = time.monotonic() + timeout
        pending: list[str] = want
        while True:
            pending = []
            for s in want:
                try:
                    c = self.container(s)
                    c.reload()
                except StackError:
                    pending.append(f"{s}: no container")
                    continue
                state = c.attrs["State"]
                if s in self.release.one_shot:
                    if state["Status"] != "exited" or state.get("ExitCode") != 0:
                        pending.append(f"{s}: {state['Status']} (exit {state.get('ExitCode')})")
                    continue
                health = (state.get("Health") or {}).get("Status")
                if state["Status"] != "running" or health not in (None, "healthy"):
                    pending.append(f"{s}: {state['Status']}/{health}")
            if not pending and "nginx" in want and not self._nginx_answers():
                pending.append("nginx: published port not answering yet")
            if not pending:
                return
            if time.monotonic() > deadline:
                raise StackError(f"stack {self.project} not healthy after {timeout}s: {pending}")
            time.sleep(0.25)

    def _nginx_answers(self) -> bool:
        if self.netns is not None:  # published in that network namespace: ask from there
            probe = (
                "import socket, sys\n"
                "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=1)\n"
                "s.settimeout(1); s.sendall(b'GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n')\n"
                "sys.exit(0 if s.recv(12).startswith(b'HTTP/1.0 200') else 1)\n"
            )
            argv = ["nsenter", f"--net={self.netns}", sys.executable, "-c", probe]
            try:
                done = subprocess.run(
                    [*argv, str(self.nginx_port)], capture_output=True, timeout=5, check=False
                )
            except subprocess.TimeoutExpired:
                return False
            return done.returncode == 0
        try:
            with socket.create_connection(("127.0.0.1", self.nginx_port), timeout=1) as s:
                s.settimeout(1)
                s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                return s.recv(12).startswith(b"HTTP/1.0 200")
        except OSError:
            return False

    def env_of(self, service: str) -> dict[str, str]:
        """The environment the service's container was created with."""
        env = self.container(service).attrs["Config"]["Env"] or []
        return dict(e.split("=", 1) if "=" in e else (e, "") for e in env)

    def logs(self, service: str, tail: int = 50) -> str:
        return self.container(service).logs(tail=int(tail)).decode(errors="replace")

    def set_api_health(self, healthy: bool) -> None:
        """Make api's /health answer 500 (or 200 again); the healthcheck follows in ~3 s."""
        argv = ["rm", "-f", API_UNHEALTHY_FLAG] if healthy else ["touch", API_UNHEALTHY_FLAG]
        code, out = self.exec("api", argv)
        if code != 0:
            raise StackError(f"cannot toggle api health: {out}")

    # -- exec -------------------------------------------------------------------------------
    def exec(
        self,
        service: str,
        argv: Sequence[str],
        timeout: float = 15,
        bound: bool = True,
        environment: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        """Run argv in a service's container; bounded inside (timeout N) and by a deadline here.

        docker-py's exec_run has no timeout of its own while the command is silent, and can
        drop the first output (handlers/exec_stream.py): the output is read as the product does.
        """
        c = self.container(service)
        cmd = ["timeout", str(int(timeout)), *argv] if bound else list(argv)
        result: dict[str, Any] = {}
        api = self.client.api

        def run() -> None:
            try:
                created = api.exec_create(
                    c.id, cmd, environment=dict(environment) if environment else None
                )
                # stdout and stderr in the order they came, as exec_run(demux=False) gives them
                output = b"".join(d for _, d in exec_stream.start(api, created["Id"], timeout + 5))
                result["r"] = (api.exec_inspect(created["Id"]).get("ExitCode"), output)
            except Exception as e:  # handed to the caller below
                result["e"] = e

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout + 10)
        if t.is_alive():
            raise StackError(f"exec {argv} in {service} did not return within {timeout + 10}s")
        if "e" in result:
            raise result["e"]
        code, output = result["r"]
        return int(code if code is not None else -1), output.decode(errors="replace")

    def psql(self, sql: str, database: str = "dify") -> str:
        if self.dialect != "postgresql":
            raise StackError(f"{self.db_service} is not PostgreSQL; use mysql()")
        code, out = self.exec(
            self.db_service,
            [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-d",
                database,
                "-At",
                "-c",
                sql,
            ],
        )
        if code != 0:
            raise StackError(f"psql failed ({code}): {out}")
        return out

    def mysql(self, sql: str, database: str = "dify") -> str:
        """The `mysql` client inside db_mysql as root (password through MYSQL_PWD, not argv)."""
        if self.dialect != "mysql":
            raise StackError(f"{self.db_service} is not MySQL; use psql()")
        code, out = self.exec(
            self.db_service,
            ["mysql", "-u", "root", "-N", "-B", "--raw", "-e", sql, database],
            environment={"MYSQL_PWD": self.db_password},
        )
        if code != 0:
            raise StackError(f"mysql failed ({code}): {out}")
        return out

    def sql(self, statement: str) -> str:
        """Run SQL in the metadata DB, whichever it is."""
        return self.psql(statement) if self.dialect == "postgresql" else self.mysql(statement)

    def plugin_sql(self, statement: str) -> str:
        """Run SQL in plugin_daemon's database (DB_PLUGIN_DATABASE, default dify_plugin)."""
        if self.dialect == "postgresql":
            return self.psql(statement, PLUGIN_DATABASE)
        return self.mysql(statement, PLUGIN_DATABASE)

    def set_plugins(self, installs: Iterable[PluginInstall]) -> None:
        """Replace every plugin row (installations, packages, declarations, providers)."""
        self.plugin_sql(clear_plugins_sql() + "\n" + plugin_rows_sql(installs))

    def log(self, service: str, *lines: str) -> None:
        """Lines in a service's container log, as if its main process had written them
        (through /proc/1/fd/1); `restore()` recreates the service to start a clean log."""
        script = 'for line in "$@"; do printf "%s\\n" "$line"; done > /proc/1/fd/1'
        code, out = self.exec(service, ["sh", "-c", script, "sh", *lines])
        if code != 0:
            raise StackError(f"could not write to {service}'s log ({code}): {out}")
        self._logs_dirty.add(service)

    def rows(self) -> list[dict[str, Any]]:
        """Every credential table's rows, as dicts with table, columns and the parsed base_url."""
        return parse_rows(self.sql(rows_query(self.schema, self.dialect)))

    def set_rows(self, rows: Iterable[RowLike]) -> None:
        self.sql(rows_sql(rows, self.schema, self.dialect))

    # -- redis ------------------------------------------------------------------------------
    def redis_cli(self, *args: str) -> str:
        # The password goes in through REDISCLI_AUTH, as upstream sets it: never on argv.
        code, out = self.exec(
            "redis", ["redis-cli", *args], environment={"REDISCLI_AUTH": self.redis_password}
        )
        if code != 0:
            raise StackError(f"redis-cli {args[:1]} failed ({code}): {out}")
        return out

    def redis_keys(self, pattern: str = "*") -> list[str]:
        out = self.redis_cli("--scan", "--pattern", pattern)
        return sorted(k for k in out.splitlines() if k)

    def seed_redis_keys(self, keys: Mapping[str, str] | None = None, ttl: int = 86400) -> None:
        """SETEX each key (default: Dify's credential cache entries for the initial rows)."""
        for k, v in (cache_keys_for(self.initial_rows) if keys is None else keys).items():
            self.redis_cli("SETEX", k, str(ttl), v)

    # -- restore ----------------------------------------------------------------------------
    def restore(self, timeout: float = 60) -> None:
        """Back to the state right after construction + up(): files, containers, rows, cache.

        Files the test (or the product: backups, locks) added to the project folder are removed.
        """
        for extra in set(self.dir.iterdir()) - self._entries:
            if extra.is_dir() and not extra.is_symlink():
                shutil.rmtree(extra, ignore_errors=True)
            else:
                extra.unlink(missing_ok=True)
        for path in self._tracked():
            if path not in self._snapshot:
                path.unlink(missing_ok=True)
        for path, content in self._snapshot.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        # up -d recreates services whose config (or .env) changed and starts stopped ones.
        self.compose("up", "-d", "--remove-orphans", timeout=timeout + 60)
        if self._logs_dirty:  # a container's log cannot be cleared, only the container renewed
            dirty = sorted(self._logs_dirty)
            self.compose("up", "-d", "--no-deps", "--force-recreate", *dirty, timeout=timeout)
            self._logs_dirty.clear()
        self.wait_healthy(timeout)
        self.set_rows(self.initial_rows)
        if self.has_plugins:
            self.set_plugins(self.initial_plugins)
        self.redis_cli("FLUSHALL")
        self.seed_redis_keys()

    def __enter__(self) -> DifyStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def __repr__(self) -> str:
        return (
            f"DifyStack(project={self.project!r}, release={self.release.name!r}, "
            f"db={self.db!r}, compose={self.compose_flavour!r}, dir={str(self.dir)!r})"
        )


def healthy_stack(tmp_path: Path | str, ollama_url: str, **kwargs: Any) -> DifyStack:
    """The healthy state every suite and benchmark starts from: host-gateway on the model
    callers, the Ollama rows and OPENAI_API_BASE pointing at `ollama_url` (the fake Ollama as
    containers reach it, e.g. FakeOllama.container_url()).

    healthy_stack(tmp, url, release="1.15.0", db="mysql", compose="v2", client=...)
    """
    release = kwargs.get("release", "1.13.3")
    kwargs.setdefault("ollama_rows", healthy_rows(release, ollama_url))
    overrides = {"OPENAI_API_BASE": f"{ollama_url}/v1", **kwargs.pop("env_overrides", {})}
    return DifyStack(tmp_path, env_overrides=overrides, extra_hosts=True, **kwargs)
