"""A look-alike Dify compose project, built from Dify's real docker-compose.yaml and .env.example.

The written docker-compose.yaml keeps the real `x-shared-env` anchor (every key, OPENAI_API_BASE
included) merged into api, worker, worker_beat and plugin_daemon with a real YAML merge key, the
real service names, environments, healthcheck commands, networks, ports and depends_on; it only
swaps the images for local ones (no pulls), runs small stand-in programs (tests/rig/images/),
shortens healthcheck intervals and strips what Compose v1.29.2 rejects. `.env` is the real
.env.example with a few lines replaced. Everything runs on the private engine (DOCKER_HOST).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import yaml
from docker.models.containers import Container

DIFY_VERSION = "1.13.3"
REFERENCE_DIR = Path(
    os.environ.get(
        "DIFY_REFERENCE_DIR",
        Path(__file__).resolve().parents[1] / "data" / f"dify-{DIFY_VERSION}",
    )
)
IMAGES_DIR = Path(__file__).resolve().parent / "images"
PRIVATE_DOCKER_HOST = "unix:///run/dify-ollama-test-engine/docker.sock"

DEBIAN_IMAGE = "dify-ollama-test/debian:1"
BUSYBOX_IMAGE = "dify-ollama-test/busybox:1"
PYTHON_ONLY_IMAGE = "dify-ollama-test/python-only:1"

SERVICES = ("api", "worker", "worker_beat", "plugin_daemon", "db_postgres", "redis", "nginx")
# Services that merge Dify's shared environment (and call models).
SHARED_ENV_SERVICES = ("api", "worker", "worker_beat", "plugin_daemon")
SHARED_ANCHOR = "shared-api-worker-env"
MERGE_MARK = "<<rig-merge>>"

OLLAMA_PROVIDER = "langgenius/ollama/ollama"
DEFAULT_TENANT_ID = "8d0a2b8e-6a8f-4a43-9a55-3f4f2c1d7e01"
HOST_GATEWAY = "host.docker.internal:host-gateway"
API_UNHEALTHY_FLAG = "/tmp/rig-unhealthy"  # inside the api container (images/httpd.py)
HOST_GATEWAY_OVERRIDE: dict[str, Any] = {
    "services": {s: {"extra_hosts": [HOST_GATEWAY]} for s in SHARED_ENV_SERVICES}
}

# What each kept service runs instead of the upstream image (all scripts mounted at /rig).
_STANDINS: dict[str, dict[str, Any]] = {
    "api": {
        "image": DEBIAN_IMAGE,
        "entrypoint": ["python3", "-u", "/rig/httpd.py"],
        "command": ["api"],
    },
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
    # db_postgres and redis keep their upstream `command` (postgres -c ..., redis-server ...).
    "db_postgres": {"image": DEBIAN_IMAGE, "entrypoint": ["sh", "/rig/db_init.sh"]},
    "redis": {"image": DEBIAN_IMAGE},
    "nginx": {
        "image": DEBIAN_IMAGE,
        "entrypoint": ["python3", "-u", "/rig/httpd.py"],
        "command": ["nginx"],
    },
}


class StackError(RuntimeError):
    """A compose or exec step of the rig failed; the message carries its output."""


# --------------------------------------------------------------------------------------------
# Rows of Dify's credential tables
# --------------------------------------------------------------------------------------------
@dataclass
class OllamaRow:
    """One model credential row (provider_model_credentials, or the older provider_models)."""

    base_url: str
    model_name: str = "llama3.2:latest"
    tenant_id: str = DEFAULT_TENANT_ID
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    credential_name: str = "API KEY 1"
    provider_name: str = OLLAMA_PROVIDER
    model_type: str = "llm"
    table: str = "provider_model_credentials"
    config: dict[str, Any] = field(default_factory=dict)  # extra/overriding config fields

    def credentials(self) -> dict[str, Any]:
        # The Ollama plugin's credential form; none of these is secret, so stored in clear.
        return {
            "base_url": self.base_url,
            "mode": "chat",
            "context_size": "4096",
            "max_tokens": "4096",
            "vision_support": "false",
            "function_call_support": "false",
            **self.config,
        }

    def encrypted_config(self) -> str:
        return json.dumps(self.credentials())


RowLike = OllamaRow | Mapping[str, Any]


def as_row(r: RowLike) -> OllamaRow:
    return r if isinstance(r, OllamaRow) else OllamaRow(**dict(r))


def _q(value: str | None) -> str:
    """SQL literal (standard_conforming_strings is on: only quotes need doubling)."""
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + "'"


SCHEMAS = ("compat", "1.13")


def rows_sql(rows: Iterable[RowLike], schema: str = "compat") -> str:
    """One transaction replacing both credential tables with `rows`.

    schema "compat": provider_models still has encrypted_config (releases before migration
    0e154742a5fa, 2025-08) next to provider_model_credentials. "1.13": exactly Dify 1.13, where
    that migration dropped provider_models.encrypted_config and links rows by credential_id.
    """
    out = ["BEGIN;", "DELETE FROM provider_model_credentials;", "DELETE FROM provider_models;"]
    for r in map(as_row, rows):
        if r.table == "provider_models" and schema == "1.13":
            raise ValueError("schema 1.13 has no provider_models.encrypted_config")
        if r.table == "provider_models":
            out.append(
                "INSERT INTO provider_models (id, tenant_id, provider_name, model_name, "
                "model_type, encrypted_config, is_valid) VALUES ("
                f"{_q(r.id)}, {_q(r.tenant_id)}, {_q(r.provider_name)}, {_q(r.model_name)}, "
                f"{_q(r.model_type)}, {_q(r.encrypted_config())}, true);"
            )
        elif r.table == "provider_model_credentials":
            out.append(
                "INSERT INTO provider_model_credentials (id, tenant_id, provider_name, "
                "model_name, model_type, credential_name, encrypted_config) VALUES ("
                f"{_q(r.id)}, {_q(r.tenant_id)}, {_q(r.provider_name)}, {_q(r.model_name)}, "
                f"{_q(r.model_type)}, {_q(r.credential_name)}, {_q(r.encrypted_config())});"
            )
            if schema == "1.13":
                out.append(
                    "INSERT INTO provider_models (tenant_id, provider_name, model_name, "
                    "model_type, credential_id, is_valid) VALUES ("
                    f"{_q(r.tenant_id)}, {_q(r.provider_name)}, {_q(r.model_name)}, "
                    f"{_q(r.model_type)}, {_q(r.id)}, true) ON CONFLICT DO NOTHING;"
                )
        else:
            raise ValueError(f"unknown table {r.table!r}")
    out.append("COMMIT;")
    return "\n".join(out) + "\n"


def cache_keys_for(rows: Iterable[RowLike]) -> dict[str, str]:
    """The credential cache entries Dify would hold in Redis for these rows (plus one unrelated)."""
    keys: dict[str, str] = {}
    for r in map(as_row, rows):
        creds = json.dumps(r.credentials())
        keys[f"provider_model_credentials:tenant_id:{r.tenant_id}:id:{r.id}"] = creds
        pid = uuid.uuid5(uuid.NAMESPACE_URL, f"{r.tenant_id}/{r.provider_name}")
        keys[f"provider_credentials:tenant_id:{r.tenant_id}:id:{pid}"] = creds
    keys["rig:unrelated"] = "must survive cache flushes of credential keys"
    return keys


# --------------------------------------------------------------------------------------------
# Building the project folder from Dify's real files
# --------------------------------------------------------------------------------------------
class _MarkMergeLoader(yaml.SafeLoader):
    """SafeLoader that leaves `<<: *anchor` as a marker instead of flattening it.

    The file has a single anchor, so the marker's value is simply the anchor name.
    """

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        for i, (key, _value) in enumerate(node.value):
            if key.tag == "tag:yaml.org,2002:merge":
                node.value[i] = (
                    yaml.ScalarNode("tag:yaml.org,2002:str", MERGE_MARK),
                    yaml.ScalarNode("tag:yaml.org,2002:str", SHARED_ANCHOR),
                )
        super().flatten_mapping(node)


def _shared_env_block(text: str) -> str:
    """The upstream `x-shared-env: &anchor` block, verbatim (comments and quoting kept)."""
    m = re.search(r"^x-shared-env: &" + SHARED_ANCHOR + r"\n(.*?)(?=^\S)", text, re.M | re.S)
    if not m:
        raise StackError("x-shared-env anchor not found in Dify's docker-compose.yaml")
    return m.group(0)


def _strip_depends_on(dep: Any, kept: Sequence[str]) -> Any:
    if isinstance(dep, list):
        return [d for d in dep if d in kept]
    out = {}
    for name, cond in dep.items():
        if name not in kept:
            continue
        cond = dict(cond or {})
        cond.pop("required", None)  # Compose >= 2.20 only; v1.29.2 rejects the key
        cond.pop("restart", None)
        out[name] = cond
    return out


def _existing_volumes(vols: list[Any], project_dir: Path) -> list[Any]:
    keep = []
    for v in vols:
        src = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
        if src.startswith((".", "/")) and not (project_dir / src).exists():
            continue  # bind mount of a folder this look-alike does not have
        keep.append(v)
    return keep


def build_compose(
    project_dir: Path,
    plugin_daemon_env: Mapping[str, str] | None = None,
    reference_dir: Path = REFERENCE_DIR,
    dns: Sequence[str] = (),
) -> str:
    """Text of the look-alike docker-compose.yaml for a project folder (holding ./rig).

    `dns` (not in upstream): resolver for names the engine's embedded DNS does not know; see
    OfflineDns for why an offline engine needs one.
    """
    text = (reference_dir / "docker-compose.yaml").read_text()
    data = yaml.load(text, Loader=_MarkMergeLoader)
    upstream = data["services"]
    services: dict[str, Any] = {}
    for name in SERVICES:
        svc = dict(upstream[name])
        svc.update(_STANDINS[name])
        if "depends_on" in svc:
            svc["depends_on"] = _strip_depends_on(svc["depends_on"], SERVICES)
            if not svc["depends_on"]:
                del svc["depends_on"]
        svc["volumes"] = [*_existing_volumes(svc.get("volumes", []), project_dir), "./rig:/rig:ro"]
        hc = svc.get("healthcheck")
        if hc is not None or name == "redis":
            hc = dict(hc or {})
            # Upstream polls every 30 s (redis: the engine default); tests cannot wait that long.
            if name in ("api", "redis"):
                # retries 3 (upstream api; engine default for redis) and a short start period:
                # a broken api turns unhealthy within seconds, not after 30 s of grace.
                hc.update(interval="1s", timeout="3s", retries=3, start_period="2s")
            if "disable" in hc:
                # Compose v1 rejects `disable` combined with other keys (worker, worker_beat).
                hc = {"disable": hc["disable"]}
            svc["healthcheck"] = hc
        if name == "plugin_daemon" and plugin_daemon_env:
            svc["environment"] = {**svc["environment"], **plugin_daemon_env}
        svc.pop("extra_hosts", None)  # none upstream; the override adds it
        if dns:
            svc["dns"] = list(dns)
        services[name] = svc
    networks = {
        n: data["networks"][n]
        for n in sorted(
            {n for s in services.values() for n in (s.get("networks") or []) if n != "default"}
        )
    }
    body = yaml.safe_dump(
        {"services": services, "networks": networks},
        sort_keys=False,
        default_flow_style=False,
        width=1000,
        allow_unicode=True,
    )
    body = re.sub(
        r"^(\s*)" + re.escape(MERGE_MARK) + r": " + SHARED_ANCHOR + r"$",
        r"\1<<: *" + SHARED_ANCHOR,
        body,
        flags=re.M,
    )
    header = (
        f"# Look-alike of Dify {DIFY_VERSION}'s docker/docker-compose.yaml, generated by\n"
        "# tests/rig/stack.py from the real file: same anchor, services, env; local images.\n"
        + (
            "# `dns:` is not upstream: an offline engine's NXDOMAIN responder (OfflineDns).\n"
            if dns
            else ""
        )
    )
    return header + _shared_env_block(text) + "\n" + body


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


def compose_env() -> dict[str, str]:
    """Environment for docker-compose: only what it needs.

    Compose gives the caller's environment precedence over .env, so passing os.environ through
    would let any OPENAI_API_BASE, COMPOSE_* or DB_* of the test process leak into the stack.
    """
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DOCKER_HOST": docker_host()}
    for k in ("HOME", "LANG", "TMPDIR"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------
class DifyStack:
    """A running look-alike Dify project on the private engine.

    DifyStack(tmp_path, project=None, env_overrides=None, ollama_rows=None,
              extra_hosts=False, plugin_daemon_env=None, client=None, offline_dns=True,
              schema="compat")
    The project folder is `tmp_path/"docker"` (like upstream's `docker/`); compose runs with
    `-p project` since every stack's folder has the same name.
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
        schema: str = "compat",
    ) -> None:
        self.dir = Path(tmp_path) / "docker"
        self.project = project or f"difyrig{secrets.token_hex(4)}"
        self.nginx_port = free_port()
        self.nginx_ssl_port = free_port()
        self.plugin_debug_port = free_port()
        self.env_overrides: dict[str, str | None] = {
            "EXPOSE_NGINX_PORT": str(self.nginx_port),
            "EXPOSE_NGINX_SSL_PORT": str(self.nginx_ssl_port),
            "EXPOSE_PLUGIN_DEBUGGING_PORT": str(self.plugin_debug_port),
            **(env_overrides or {}),
        }
        self.initial_rows = [as_row(r) for r in (ollama_rows or [])]
        self.plugin_daemon_env = dict(plugin_daemon_env or {})
        if schema not in SCHEMAS:
            raise ValueError(f"schema must be one of {SCHEMAS}")
        self.schema = schema
        self._client = client
        self.dns: list[str] = []
        if offline_dns:
            gateway = bridge_gateway(self.client)
            if gateway and OfflineDns.ensure(gateway):
                self.dns = [gateway]
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_files()
        if extra_hosts:
            self.write_override(HOST_GATEWAY_OVERRIDE)
        self._snapshot = self._read_snapshot()
        self._entries = set(self.dir.iterdir())

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

    def _write_files(self) -> None:
        rig = self.dir / "rig"
        rig.mkdir(exist_ok=True)
        for f in IMAGES_DIR.iterdir():
            if f.is_file():
                shutil.copy2(f, rig / f.name)
        (rig / "seed.sql").write_text(rows_sql(self.initial_rows, self.schema))
        if self.schema == "1.13":
            # As migration 0e154742a5fa left it: the config lives in provider_model_credentials.
            (rig / "schema_extra.sql").write_text(
                "ALTER TABLE provider_models DROP COLUMN encrypted_config;\n"
            )
        self.compose_path.write_text(build_compose(self.dir, self.plugin_daemon_env, dns=self.dns))
        write_env(REFERENCE_DIR / ".env.example", self.env_path, self.env_overrides)
        shutil.copy2(REFERENCE_DIR / ".env.example", self.dir / ".env.example")
        for p in (self.dir / ".env.example",):
            p.chmod(0o644)

    def write_override(self, data: Mapping[str, Any]) -> Path:
        """Write docker-compose.override.yaml (compose loads it next to docker-compose.yaml)."""
        self.override_path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
        return self.override_path

    def read_env(self) -> str:
        return self.env_path.read_text()

    def _read_snapshot(self) -> dict[Path, bytes | None]:
        files = (self.env_path, self.dir / ".env.example", self.compose_path, self.override_path)
        return {p: (p.read_bytes() if p.exists() else None) for p in files}

    # -- docker -----------------------------------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=docker_host(), timeout=30)
        return self._client

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        argv = [
            "docker-compose",
            "-p",
            self.project,
            "--project-directory",
            str(self.dir),
            *args,
        ]
        try:
            proc = subprocess.run(
                argv,
                cwd=self.dir,
                env=compose_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise StackError(f"{' '.join(argv)} timed out after {timeout}s") from e
        if check and proc.returncode != 0:
            raise StackError(
                f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
            )
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
        """`docker-compose up -d --no-deps --force-recreate svc...` (re-reads .env/override)."""
        self.compose("up", "-d", "--no-deps", "--force-recreate", *services, timeout=timeout + 60)
        self.wait_healthy(timeout, services)

    def wait_healthy(self, timeout: float = 60, services: Sequence[str] | None = None) -> None:
        """Every service running, and healthy where it has a healthcheck; nginx answering."""
        want = list(services or SERVICES)
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
        self, service: str, argv: Sequence[str], timeout: float = 15, bound: bool = True
    ) -> tuple[int, str]:
        """Run argv in a service's container; bounded inside (timeout N) and by a deadline here.

        docker-py's exec_run has no timeout of its own while the command is silent.
        """
        c = self.container(service)
        cmd = ["timeout", str(int(timeout)), *argv] if bound else list(argv)
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["r"] = c.exec_run(cmd, demux=False)
            except Exception as e:  # handed to the caller below
                result["e"] = e

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout + 10)
        if t.is_alive():
            raise StackError(f"exec {argv} in {service} did not return within {timeout + 10}s")
        if "e" in result:
            raise result["e"]
        r = result["r"]
        return int(r.exit_code), (r.output or b"").decode(errors="replace")

    def psql(self, sql: str, database: str = "dify") -> str:
        code, out = self.exec(
            "db_postgres",
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

    def rows(self) -> list[dict[str, Any]]:
        """Both credential tables, as dicts with table, columns and the parsed base_url."""
        sql = (
            "SELECT coalesce(json_agg(t ORDER BY t.tbl, t.created_at, t.id), '[]') FROM ("
            " SELECT 'provider_model_credentials' AS tbl, id, tenant_id, provider_name,"
            " model_name, model_type, credential_name, encrypted_config, created_at"
            " FROM provider_model_credentials"
            # to_jsonb: works whether or not the column exists (schema "compat" or "1.13").
            " UNION ALL SELECT 'provider_models', id, tenant_id, provider_name, model_name,"
            " model_type, NULL, to_jsonb(pm)->>'encrypted_config', created_at"
            " FROM provider_models pm WHERE to_jsonb(pm)->>'encrypted_config' IS NOT NULL) t"
        )
        out = []
        for r in json.loads(self.psql(sql)):
            r["table"] = r.pop("tbl")
            r.pop("created_at", None)
            try:
                r["base_url"] = json.loads(r["encrypted_config"] or "{}").get("base_url")
            except ValueError:
                r["base_url"] = None
            out.append(r)
        return out

    def set_rows(self, rows: Iterable[RowLike]) -> None:
        self.psql(rows_sql(rows, self.schema))

    # -- redis ------------------------------------------------------------------------------
    def redis_cli(self, *args: str) -> str:
        # REDISCLI_AUTH is set in the container, as upstream: no password on the command line.
        code, out = self.exec("redis", ["redis-cli", *args])
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
        for path, content in self._snapshot.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
        # up -d recreates services whose config (or .env) changed and starts stopped ones.
        self.compose("up", "-d", "--remove-orphans", timeout=timeout + 60)
        self.wait_healthy(timeout)
        self.set_rows(self.initial_rows)
        self.redis_cli("FLUSHALL")
        self.seed_redis_keys()

    def __enter__(self) -> DifyStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def __repr__(self) -> str:
        return f"DifyStack(project={self.project!r}, dir={str(self.dir)!r})"


def healthy_stack(tmp_path: Path | str, ollama_url: str, **kwargs: Any) -> DifyStack:
    """The healthy state every suite and benchmark starts from: host-gateway on the model
    callers, the Ollama rows and OPENAI_API_BASE pointing at `ollama_url` (the fake Ollama as
    containers reach it, e.g. FakeOllama.container_url())."""
    return DifyStack(
        tmp_path,
        env_overrides={"OPENAI_API_BASE": f"{ollama_url}/v1"},
        ollama_rows=[OllamaRow(base_url=ollama_url)],
        extra_hosts=True,
        **kwargs,
    )
