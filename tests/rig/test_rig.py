"""Smoke tests of the rig itself: the fake Ollama and the look-alike Dify stack."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.rig.fake_ollama import DEFAULT_MODELS, EMBED_MODEL, FakeModel, FakeOllama
from tests.rig.incident import incident_rows
from tests.rig.stack import (
    HOST_GATEWAY_OVERRIDE,
    REFERENCE_DIR,
    RELEASES,
    SHARED_ENV_SERVICES,
    DifyStack,
    OllamaRow,
    build_compose,
    healthy_rows,
    rows_sql,
    write_env,
)


def _get(url: str, timeout: float = 3) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _listening(port: int) -> set[str]:
    """Local addresses listening on `port`, from /proc/net/tcp (hex, as the product reads it)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if state == "0A" and int(p, 16) == port:
            out.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return out


# --- fake Ollama (no engine needed) -------------------------------------------------------------
def test_fake_ollama_speaks_ollama() -> None:
    with FakeOllama(models=["llama3.2:latest", FakeModel("qwen2.5:7b", size=4_683_087_332)]) as f:
        assert _get(f.url + "/") == (200, b"Ollama is running")
        assert json.loads(_get(f.url + "/api/version")[1]) == {"version": "0.12.3"}
        tags = json.loads(_get(f.url + "/api/tags")[1])["models"]
        assert [m["name"] for m in tags] == ["llama3.2:latest", "qwen2.5:7b"]
        assert tags[1]["size"] == 4_683_087_332 and tags[0]["details"]["format"] == "gguf"
        assert len(json.loads(_get(f.url + "/api/ps")[1])["models"]) == 2
        assert json.loads(_get(f.url + "/v1/models")[1])["object"] == "list"
        # The plugin joins api/chat onto base_url: a /v1 or /api suffix gives 404.
        for bad in ("/v1/api/chat", "/api/api/chat"):
            code, body = _post(f.url + bad, {"model": "llama3.2"})
            assert code == 404 and "error" in body
        code, body = _post(f.url + "/api/chat", {"model": "llama3.2", "stream": False})
        assert code == 200 and body["done"] and body["message"]["role"] == "assistant"
        code, body = _post(f.url + "/api/chat", {"model": "mistral", "stream": False})
        assert (code, body["error"]) == (404, 'model "mistral" not found, try pulling it first')
        f.set_models([])
        assert json.loads(_get(f.url + "/api/tags")[1]) == {"models": []}
        assert [r.path for r in f.requests][:2] == ["/", "/api/version"]


def test_fake_ollama_show_ps_and_chat_in_ollamas_shapes() -> None:
    """/api/show (capabilities, context length, parameters), /api/ps after a cold load that
    took the model's load time, /api/chat streaming NDJSON or one object, one token with
    num_predict=1, and Ollama's refusals for tools, embeddings and chat."""
    cold = FakeModel("qwen2.5:7b", loaded=False, load_seconds=0.3, capabilities=("completion",))
    with FakeOllama(models=["llama3.2:latest", cold, DEFAULT_MODELS[1]]) as f:
        code, show = _post(f.url + "/api/show", {"model": "llama3.2"})
        assert code == 200 and show["capabilities"] == ["completion", "tools"]
        assert show["model_info"]["llama.context_length"] == 131072
        assert show["model_info"]["general.architecture"] == "llama"
        _, embed = _post(f.url + "/api/show", {"model": EMBED_MODEL})
        assert embed["capabilities"] == ["embedding"]
        ps = [m["name"] for m in json.loads(_get(f.url + "/api/ps")[1])["models"]]
        assert "qwen2.5:7b" not in ps
        one = {"model": "qwen2.5:7b", "stream": False, "options": {"num_predict": 1}}
        one["messages"] = [{"role": "user", "content": "hi"}]
        code, body = _post(f.url + "/api/chat", one)
        assert code == 200 and body["message"]["content"] == "Hello"
        assert body["done_reason"] == "length" and body["load_duration"] >= 0.3e9
        ps = [m["name"] for m in json.loads(_get(f.url + "/api/ps")[1])["models"]]
        assert "qwen2.5:7b" in ps  # loaded by the first request, as Ollama does
        req = urllib.request.Request(
            f.url + "/api/chat", data=json.dumps({"model": "llama3.2"}).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=3) as r:
            assert r.headers["Content-Type"] == "application/x-ndjson"
            chunks = [json.loads(line) for line in r.read().splitlines()]
        assert [c["done"] for c in chunks] == [False, True]
        tools = {"model": "qwen2.5:7b", "stream": False, "tools": [{"type": "function"}]}
        code, body = _post(f.url + "/api/chat", tools)
        assert code == 400 and body["error"].endswith("qwen2.5:7b does not support tools")
        code, body = _post(f.url + "/api/embed", {"model": "llama3.2", "input": "x"})
        assert (code, body["error"]) == (400, "this model does not support embeddings")
        code, body = _post(f.url + "/api/chat", {"model": EMBED_MODEL, "stream": False})
        assert code == 400 and "does not support chat" in body["error"]


def test_fake_ollama_hung_slow_down_up_rebind() -> None:
    f = FakeOllama().start()
    try:
        port = f.port
        assert _listening(port) == {"127.0.0.1"}
        f.set_mode("hung")
        t0 = time.monotonic()
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            _get(f.url + "/api/version", timeout=1)  # accepted, never answered
        assert 0.9 < time.monotonic() - t0 < 2
        f.set_mode("slow", delay=0.6)
        t0 = time.monotonic()
        assert _get(f.url + "/api/version")[0] == 200
        assert time.monotonic() - t0 >= 0.6
        f.set_mode("up")
        f.down()
        with pytest.raises(urllib.error.URLError) as refused:
            _get(f.url + "/api/version")
        assert isinstance(refused.value.reason, ConnectionRefusedError)
        f.up()
        assert f.port == port and _get(f.url + "/api/version")[0] == 200
        f.rebind("0.0.0.0")
        assert f.port == port and _listening(port) == {"0.0.0.0"}
        assert _get(f.url + "/api/version")[0] == 200
    finally:
        f.set_mode("hung")
        t0 = time.monotonic()
        f.stop()  # with a hung mode and no client: must still return at once
        assert time.monotonic() - t0 < 2


def test_fake_ollama_stop_releases_hung_clients() -> None:
    f = FakeOllama().start()
    f.set_mode("hung")
    s = socket.create_connection(("127.0.0.1", f.port), timeout=5)
    s.sendall(b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    t0 = time.monotonic()
    f.stop()
    assert time.monotonic() - t0 < 2
    with contextlib.suppress(ConnectionResetError):
        assert s.recv(100) == b""  # connection closed without an answer
    s.close()


# --- compose project built from Dify's real files (no engine needed) ----------------------------
def test_compose_file_keeps_dify_topology(tmp_path: Path) -> None:
    (tmp_path / "rig").mkdir()
    text = build_compose(tmp_path, {"HTTP_PROXY": "http://proxy:3128"})
    upstream = yaml.safe_load((REFERENCE_DIR / "docker-compose.yaml").read_text())
    data = yaml.safe_load(text)
    anchor = data["x-shared-env"]
    assert anchor == upstream["x-shared-env"] and len(anchor) > 600
    assert text.count("<<: *shared-api-worker-env") == 4
    assert text.count("&shared-api-worker-env") == 1
    svcs = data["services"]
    assert set(svcs) == {*SHARED_ENV_SERVICES, "db_postgres", "redis", "nginx"}
    for name in SHARED_ENV_SERVICES:
        env = svcs[name]["environment"]
        assert env["OPENAI_API_BASE"] == "${OPENAI_API_BASE:-https://api.openai.com/v1}"
        assert "extra_hosts" not in svcs[name]
    assert (
        svcs["plugin_daemon"]["environment"]["DB_DATABASE"] == "${DB_PLUGIN_DATABASE:-dify_plugin}"
    )
    assert svcs["plugin_daemon"]["environment"]["HTTP_PROXY"] == "http://proxy:3128"
    assert svcs["api"]["environment"]["DB_DATABASE"] == "${DB_DATABASE:-dify}"
    assert "required" not in text.split("services:", 1)[1]
    assert svcs["api"]["depends_on"] == {
        "db_postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_started"},
    }
    assert svcs["nginx"]["depends_on"] == ["api"]
    assert svcs["db_postgres"]["profiles"] == ["postgresql"]
    assert svcs["nginx"]["ports"][0] == "${EXPOSE_NGINX_PORT:-80}:${NGINX_PORT:-80}"
    assert svcs["api"]["healthcheck"]["test"] == [
        "CMD",
        "curl",
        "-f",
        "http://localhost:5001/health",
    ]


def test_env_is_env_example_with_replaced_lines(tmp_path: Path) -> None:
    dest = tmp_path / ".env"
    write_env(
        REFERENCE_DIR / ".env.example",
        dest,
        {"OPENAI_API_BASE": "http://127.0.0.1:11434/v1", "NEW_KEY": "x", "EXPOSE_NGINX_PORT": None},
    )
    old = (REFERENCE_DIR / ".env.example").read_text().splitlines()
    new = dest.read_text().splitlines()
    assert new[-1] == "NEW_KEY=x"
    assert "EXPOSE_NGINX_PORT=80" in old and not any(
        ln.startswith("EXPOSE_NGINX_PORT=") for ln in new
    )
    i = old.index("OPENAI_API_BASE=https://api.openai.com/v1")
    assert new[i] == "OPENAI_API_BASE=http://127.0.0.1:11434/v1"
    assert new[:i] == old[:i]


# --- the running stack -----------------------------------------------------------------------
@pytest.mark.docker
def test_healthy_stack_is_up(healthy_stack: DifyStack, session_ollama: FakeOllama) -> None:
    healthy_stack.wait_healthy(5)
    api = healthy_stack.container("api")
    labels = api.labels
    assert labels["com.docker.compose.project"] == healthy_stack.project
    assert labels["com.docker.compose.project.working_dir"] == str(healthy_stack.dir)
    env = dict(e.split("=", 1) for e in api.attrs["Config"]["Env"])
    assert env["OPENAI_API_BASE"] == f"http://host.docker.internal:{session_ollama.port}/v1"
    assert len(env) > 600
    pd_env = dict(
        e.split("=", 1) for e in healthy_stack.container("plugin_daemon").attrs["Config"]["Env"]
    )
    assert pd_env["DB_DATABASE"] == "dify_plugin"
    assert healthy_stack.exec("api", ["curl", "-fsS", "http://localhost:5001/health"]) == (
        0,
        '{"status": "ok", "version": "1.13.3"}',
    )
    code, out = healthy_stack.exec(
        "plugin_daemon", ["wget", "-O-", "http://localhost:5002/health/check"]
    )
    assert code == 0 and '"code":0' in out
    # From the host, nginx answers on the published port (as `curl http://localhost` does).
    assert _get(f"http://127.0.0.1:{healthy_stack.nginx_port}/")[0] == 200


@pytest.mark.docker
def test_db_and_redis_hold_the_seed(healthy_stack: DifyStack, session_ollama: FakeOllama) -> None:
    code, out = healthy_stack.exec(
        "db_postgres",
        [
            "psql",
            "-U",
            "postgres",
            "-d",
            "dify",
            "-At",
            "-c",
            "SELECT provider_name, model_type, encrypted_config FROM provider_model_credentials",
        ],
    )
    assert code == 0, out
    provider, model_type, config = out.strip().split("|", 2)
    assert (provider, model_type) == ("langgenius/ollama/ollama", "llm")
    assert json.loads(config)["base_url"] == f"http://host.docker.internal:{session_ollama.port}"
    assert [r["base_url"] for r in healthy_stack.rows()] == [session_ollama.container_url()]
    code, out = healthy_stack.exec(
        "redis", ["redis-cli", "-a", "difyai123456", "--no-auth-warning", "KEYS", "provider_*"]
    )
    assert code == 0 and out.count("provider_model_credentials:tenant_id:") == 1, out
    assert len(healthy_stack.redis_keys("provider_credentials:*")) == 1
    code, out = healthy_stack.exec("redis", ["env", "-u", "REDISCLI_AUTH", "redis-cli", "ping"])
    assert "NOAUTH" in out  # the password is really required


@pytest.mark.docker
def test_host_reach_needs_override_and_0000_bind(
    dify_stack_factory: Any, fake_ollama: FakeOllama
) -> None:
    stack = dify_stack_factory()
    t0 = time.monotonic()
    stack.up(["plugin_daemon", "api"])  # pulls db_postgres and redis in through depends_on
    assert time.monotonic() - t0 < 30
    url = f"{fake_ollama.container_url()}/api/version"
    wget = ["wget", "-O-", url]

    code, out = stack.exec("plugin_daemon", wget, timeout=5)
    assert code != 0 and "bad address" in out, (code, out)  # no host-gateway: no such name
    code, out = stack.exec("api", ["getent", "hosts", "host.docker.internal"], timeout=5)
    assert code == 2  # fails fast (not a 10 s DNS timeout), as on a Linux host with DNS

    stack.write_override(HOST_GATEWAY_OVERRIDE)
    stack.recreate(["plugin_daemon"])
    code, out = stack.exec("plugin_daemon", wget, timeout=5)
    assert code == 0 and '"version": "0.12.3"' in out
    assert any(r.client != "127.0.0.1" for r in fake_ollama.requests)  # came over the bridge

    fake_ollama.rebind("127.0.0.1")  # Ollama's default bind: unreachable from containers
    code, out = stack.exec("plugin_daemon", wget, timeout=5)
    assert code != 0 and "refused" in out.lower(), out


@pytest.mark.docker
def test_restore_undoes_mutations(restore_healthy_stack: DifyStack) -> None:
    stack = restore_healthy_stack
    before_env = stack.env_path.read_bytes()
    before_rows = stack.rows()
    text = before_env.decode().replace(
        "OPENAI_API_BASE=http://host.docker.internal", "OPENAI_API_BASE=http://127.0.0.1"
    )
    stack.env_path.write_text(text)
    stack.override_path.unlink()
    stack.recreate(["api"])
    stack.stop("worker")
    stack.set_rows([OllamaRow(base_url="http://127.0.0.1:11434")])
    stack.redis_cli("DEL", *stack.redis_keys("provider_*"))

    stack.restore()

    assert stack.env_path.read_bytes() == before_env
    assert stack.rows() == before_rows
    assert len(stack.redis_keys("provider_*")) == 2
    api = stack.container("api")
    assert api.attrs["HostConfig"]["ExtraHosts"] == ["host.docker.internal:host-gateway"]
    assert stack.container("worker").status == "running"


@pytest.mark.docker
def test_api_health_toggle_and_engine_restart(restore_healthy_stack: DifyStack) -> None:
    stack = restore_healthy_stack
    stack.set_api_health(False)
    deadline = time.monotonic() + 15
    while stack.container("api").attrs["State"]["Health"]["Status"] != "unhealthy":
        assert time.monotonic() < deadline, "api never turned unhealthy"
        time.sleep(0.5)
    stack.set_api_health(True)
    stack.wait_healthy(15, ["api"])
    # An engine restart keeps the database (initialised once) and answers quickly.
    rows = stack.rows()
    t0 = time.monotonic()
    stack.container("db_postgres").restart(timeout=5)
    stack.wait_healthy(20, ["db_postgres"])
    assert time.monotonic() - t0 < 15
    assert stack.rows() == rows


@pytest.mark.docker
def test_exact_113_schema(dify_stack_factory: Any) -> None:
    """schema="1.13": provider_models lost encrypted_config (migration 0e154742a5fa)."""
    row = OllamaRow(base_url="http://127.0.0.1:11434")
    stack = dify_stack_factory(ollama_rows=[row], schema="1.13")
    stack.up(["db_postgres"])
    cols = stack.psql(
        "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns"
        " WHERE table_name = 'provider_models'"
    )
    assert "encrypted_config" not in cols and "credential_id" in cols
    linked = stack.psql("SELECT credential_id FROM provider_models").strip()
    assert linked == row.id
    assert [r["base_url"] for r in stack.rows()] == ["http://127.0.0.1:11434"]


@pytest.mark.parametrize(
    ("release", "db", "compose"),
    [
        ("0.x", "postgresql", "v2"),
        ("0.x", "postgresql", "v1"),
        ("1.9.1", "postgresql", "v2"),
        ("1.9.1", "postgresql", "v1"),
        ("1.13.3", "postgresql", "v2"),
        ("1.15.0", "postgresql", "v2"),
        ("1.15.0", "mysql", "v2"),
    ],
)
def test_every_release_keeps_its_env_mechanism(
    tmp_path: Path, release: str, db: str, compose: str
) -> None:
    """The look-alike keeps the release's anchors verbatim and merged where upstream merges
    them, its env_file lists and profiles, and the Compose flavour accepts the file."""
    stack = DifyStack(tmp_path, release=release, db=db, compose=compose, offline_dns=False)
    rel = stack.release
    upstream_text = (rel.data_dir / "docker-compose.yaml").read_text()
    upstream = yaml.safe_load(upstream_text)
    text = stack.compose_path.read_text()
    ours = yaml.safe_load(text)
    anchors = [k for k in upstream if k.startswith("x-")]
    assert anchors and all(ours[k] == upstream[k] for k in anchors)
    # merged exactly where upstream merges an anchor, with the same anchor
    for name in rel.services:
        up = re.findall(r"<<: \*([\w-]+)", _service_block(upstream_text, name))
        assert re.findall(r"<<: \*([\w-]+)", _service_block(text, name)) == up, name
    for name in rel.services:
        want, got = upstream["services"][name], ours["services"][name]
        assert got.get("environment") == want.get("environment"), name
        assert got.get("env_file") == want.get("env_file"), name
        assert got.get("profiles") == want.get("profiles"), name
        hc = want.get("healthcheck") or {}
        if hc.get("test") and "disable" not in hc:
            assert got["healthcheck"]["test"] == hc["test"], name
    if rel.name == "1.15.0":
        assert len(ours["services"]["api"]["env_file"]) == 30
        assert ours["services"]["api"]["env_file"][-1] == "./.env"
        assert (stack.dir / "envs" / "core-services" / "shared.env.example").is_file()
        assert not (stack.dir / "envs" / "core-services" / "shared.env").exists()
    deps = str([ours["services"][s].get("depends_on") for s in rel.services])
    upstream_deps = str([upstream["services"][s].get("depends_on") for s in rel.services])
    assert ("required" in deps) == (compose != "v1" and "required" in upstream_deps)
    services = stack.compose("config", "--services").split()
    assert sorted(services) == sorted(stack.services)


def _service_block(text: str, name: str) -> str:
    """The upstream text of one service (up to the next service at the same indent)."""
    start = text.index(f"\n  {name}:\n")
    nxt = re.search(r"\n  [A-Za-z0-9_-]+:\n", text[start + 1 :])
    return text[start : start + 1 + nxt.start()] if nxt else text[start:]


def test_layout_rows_fit_every_schema() -> None:
    """healthy and incident rows are valid SQL for their release's schema and dialect."""
    ollama = FakeOllama()
    for name in RELEASES:
        rel = RELEASES[name]
        for db in rel.db_kinds:
            schema = "1.13" if db == "mysql" else rel.schema
            dialect = "mysql" if db == "mysql" else "postgresql"
            for rows in (healthy_rows(name, "http://h:1"), incident_rows(ollama, name)):
                sql = rows_sql(rows, schema, dialect)
                assert sql.count("INSERT") >= len(rows)
    with pytest.raises(ValueError, match=r"0\.x has no table"):
        rows_sql([OllamaRow(base_url="x")], "0.x")
