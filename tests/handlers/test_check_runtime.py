"""issue 10's findings against the look-alike stack on the private engine: dify.plugin,
ollama.capabilities, dify.timeouts, dify.chat and dify.errors, each failing on its broken case
and passing on the healthy one. plugin_daemon's database is real (PostgreSQL, the tables of
langgenius/dify-plugin-daemon's models), its log is the container's real log, and Ollama is
the fake at the wire (tests/rig/fake_ollama.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handlers.check import run_check, verification_check
from handlers.results import Finding, Report, Status
from tests.handlers.test_check_stack import settings_for
from tests.rig.fake_ollama import DEFAULT_MODELS, FakeModel, FakeOllama
from tests.rig.plugin_db import OLLAMA_PLUGIN_ID, PluginInstall, unique_identifier
from tests.rig.stack import DifyStack, OllamaRow

pytestmark = pytest.mark.docker

GiB = 1024**3
NEW = ("dify.plugin", "ollama.capabilities", "dify.timeouts", "dify.errors")
OLLAMA_UID = unique_identifier(OLLAMA_PLUGIN_ID, "0.1.4")


def finding(report: Report, finding_id: str) -> Finding:
    found = report.finding(finding_id)
    assert found is not None, f"{finding_id} missing from the report"
    return found


def check(stack: DifyStack, ollama: FakeOllama, *only: str, **kw: object) -> Report:
    chat = str(kw.pop("chat", "off"))
    return run_check(settings_for(stack, ollama, **kw), tuple(only), chat=chat)


def set_env(stack: DifyStack, key: str, value: str) -> None:
    lines = [x for x in stack.read_env().splitlines() if not x.startswith(f"{key}=")]
    stack.env_path.write_text("\n".join([*lines, f"{key}={value}"]) + "\n")


# --- the healthy stack --------------------------------------------------------------------
def test_healthy_stack_new_findings_ok(healthy_stack: DifyStack, session_ollama: FakeOllama):
    report = check(healthy_stack, session_ollama)
    for fid in NEW:
        assert finding(report, fid).status is Status.OK, finding(report, fid)
    assert "0.1.4 installed for 1 workspace" in finding(report, "dify.plugin").summary
    assert "llama3.2:latest" in finding(report, "ollama.capabilities").detail
    # a plain check does not chat (a chat loads the model): dify.chat is not even run
    assert report.finding("dify.chat") is None
    chat = check(healthy_stack, session_ollama, chat="on")
    said = finding(chat, "dify.chat")
    assert said.status is Status.OK and "plugin_daemon" in said.summary, said
    assert "/api/chat" in said.detail and "HTTP 200" in said.detail


# --- dify.plugin --------------------------------------------------------------------------
def test_plugin_missing(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    stack = restore_healthy_stack
    stack.set_plugins([PluginInstall(tenant_id="0b7d1c9e-3f1a-4c55-8a8e-2a1b3c4d5e6f")])
    found = finding(check(stack, session_ollama, "dify.plugin"), "dify.plugin")
    assert found.status is Status.FAIL and "not installed for 1 of 1" in found.summary
    assert "Marketplace" in found.remedy and found.service == "plugin_daemon"


def test_plugin_package_row_missing(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    stack = restore_healthy_stack
    stack.plugin_sql("DELETE FROM plugins;")
    found = finding(check(stack, session_ollama, "dify.plugin"), "dify.plugin")
    assert found.status is Status.FAIL and "refers to a package" in found.summary, found


def test_plugin_runtime_failed_and_not_found(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    stack = restore_healthy_stack
    stack.log(
        "plugin_daemon",
        f"2026/11/30 21:00:01 [INFO]init environment for plugin {OLLAMA_UID}",
        "2026/11/30 21:00:09 [ERROR]init environment failed: exit status 1, retry in 30s",
    )
    found = finding(check(stack, session_ollama, "dify.plugin"), "dify.plugin")
    assert found.status is Status.FAIL and "init environment failed" in found.summary
    assert "package download" not in found.summary
    assert "1 x init: " in found.detail
    stack.log("plugin_daemon", "[ERROR]invoke llm failed: plugin runtime not found")
    again = finding(check(stack, session_ollama, "dify.plugin"), "dify.plugin")
    assert again.status is Status.FAIL  # the init failure still explains it best
    assert "1 x runtime" in again.detail


def test_plugin_offline_install(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    stack = restore_healthy_stack
    stack.log(
        "plugin_daemon",
        f"[INFO]init environment for plugin {OLLAMA_UID}",
        "[ERROR]init environment failed: failed to install dependencies: error: Failed to "
        "fetch: `https://pypi.org/simple/dify-plugin/` Caused by: Temporary failure in name "
        "resolution",
    )
    found = finding(check(stack, session_ollama, "dify.plugin"), "dify.plugin")
    assert found.status is Status.FAIL and "package download" in found.summary
    for name in ("PIP_MIRROR_URL", "PYTHON_ENV_INIT_TIMEOUT", "HTTP_PROXY", "recreate"):
        assert name in found.remedy
    assert "PIP_MIRROR_URL=unset" in found.remedy  # what the running daemon has


def test_plugin_bad_signature(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    stack = restore_healthy_stack
    stack.log(
        "plugin_daemon",
        "[ERROR]plugin verification has been enabled, and the plugin you want to install has "
        "a bad signature",
    )
    found = finding(check(stack, session_ollama, "dify.plugin"), "dify.plugin")
    assert found.status is Status.FAIL and "bad signature" in found.summary
    assert "FORCE_VERIFYING_SIGNATURE=false" in found.remedy and "recreate" in found.remedy


def test_another_plugins_failure_is_not_ollamas(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    stack = restore_healthy_stack
    other = unique_identifier("langgenius/openai_api_compatible", "0.0.7")
    stack.log(
        "plugin_daemon",
        f"[INFO]init environment for plugin {other}",
        "[ERROR]init environment failed: exit status 1",
    )
    found = finding(check(stack, session_ollama, "dify.plugin"), "dify.plugin")
    assert found.status is Status.OK, found
    assert "other plugins failing: langgenius/openai_api_compatible" in found.detail


# --- ollama.capabilities ----------------------------------------------------------------
def test_capability_mismatches(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    """Tools and vision claimed for a model without them, an LLM configured as an embedding
    model, and a context size Ollama does not run with: each named with both sides."""
    stack = restore_healthy_stack
    url = session_ollama.container_url()
    session_ollama.set_models(
        [*DEFAULT_MODELS, FakeModel("gemma:2b", capabilities=("completion",), loaded=False)]
    )
    stack.set_rows(
        [
            OllamaRow(base_url=url, config={"function_call_support": "true"}),
            OllamaRow(base_url=url, model_name="gemma:2b", config={"vision_support": "true"}),
            OllamaRow(base_url=url, model_type="text-embedding"),  # llama3.2 as embeddings
        ]
    )
    found = finding(check(stack, session_ollama, "ollama.capabilities"), "ollama.capabilities")
    assert found.status is Status.FAIL, found
    assert "does not support embeddings" in found.detail
    assert "Vision support = No" in found.remedy
    assert "supports vision; Ollama says it does not" in found.detail
    # llama3.2 has tools (fake as real): function calling is fine for it
    assert "llama3.2:latest does not support tools" not in found.detail
    stack.set_rows(
        [OllamaRow(base_url=url, model_name="gemma:2b", config={"function_call_support": "true"})]
    )
    tools = finding(check(stack, session_ollama, "ollama.capabilities"), "ollama.capabilities")
    assert tools.status is Status.FAIL and "gemma:2b does not support tools" in tools.detail
    assert "Function call support = No" in tools.remedy


def test_context_size_not_what_ollama_runs(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    stack = restore_healthy_stack
    url = session_ollama.container_url()
    stack.set_rows([OllamaRow(base_url=url, config={"context_size": "32768"})])
    found = finding(check(stack, session_ollama, "ollama.capabilities"), "ollama.capabilities")
    assert found.status is Status.WARN, found
    assert "num_ctx 4096" in found.detail and "limit=4096" in found.detail  # /api/ps
    assert "OLLAMA_CONTEXT_LENGTH=32768" in found.remedy
    stack.set_rows([OllamaRow(base_url=url, config={"context_size": "200000"})])
    over = finding(check(stack, session_ollama, "ollama.capabilities"), "ollama.capabilities")
    assert over.status is Status.WARN and "maximum 131072" in over.detail  # /api/show


# --- dify.timeouts ------------------------------------------------------------------------
def test_cold_load_timeout_risk(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    stack = restore_healthy_stack
    big = FakeModel("llama3.1:70b", size=40 * GiB, loaded=False, parameter_size="70.6B")
    session_ollama.set_models([*DEFAULT_MODELS, big])
    stack.set_rows([OllamaRow(base_url=session_ollama.container_url(), model_name=big.name)])
    found = finding(check(stack, session_ollama, "dify.timeouts"), "dify.timeouts")
    assert found.status is Status.WARN and "llama3.1:70b" in found.summary, found
    assert "not loaded, 40.0 GiB" in found.detail
    assert "OLLAMA_KEEP_ALIVE" in found.remedy and "recreate plugin_daemon" in found.remedy
    session_ollama.mark_loaded(big.name)
    loaded = finding(check(stack, session_ollama, "dify.timeouts"), "dify.timeouts")
    assert loaded.status is Status.OK and "loaded (kept until" in loaded.detail


def test_execution_limit_below_read_timeout_and_not_recreated(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    stack = restore_healthy_stack
    set_env(stack, "PLUGIN_MAX_EXECUTION_TIMEOUT", "120")
    stack.recreate(["plugin_daemon"])
    found = finding(check(stack, session_ollama, "dify.timeouts"), "dify.timeouts")
    assert found.status is Status.WARN, found
    assert "kills calls after 120 s" in found.detail
    # .env raised again, plugin_daemon only restarted: it still runs with 120
    set_env(stack, "PLUGIN_MAX_EXECUTION_TIMEOUT", "900")
    stack.container("plugin_daemon").restart(timeout=2)
    stale = finding(check(stack, session_ollama, "dify.timeouts"), "dify.timeouts")
    assert "900 in .env but plugin_daemon runs with 120" in stale.detail
    assert stale.status is Status.WARN


# --- dify.chat ----------------------------------------------------------------------------
def test_chat_refused(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    stack = restore_healthy_stack
    stack.set_rows([OllamaRow(base_url=f"http://127.0.0.1:{session_ollama.port}")])
    found = finding(check(stack, session_ollama, "dify.chat"), "dify.chat")
    assert found.status is Status.FAIL and "cannot reach Ollama" in found.summary, found
    assert "from plugin_daemon" in found.detail and "dify.base_url" in found.remedy


def test_chat_slow_cold_load_is_slow_not_hung(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    stack = restore_healthy_stack
    slow = FakeModel("llama3.2:latest", loaded=False, load_seconds=30)
    session_ollama.set_models([slow, *DEFAULT_MODELS[1:]])
    # The check after a restart does not load a model: it says so instead of chatting.
    settings = settings_for(stack, session_ollama, chat_timeout=2)
    verified = finding(verification_check(settings), "dify.chat")
    assert verified.status is Status.SKIP and "not loaded" in verified.summary
    start = time.monotonic()
    report = check(stack, session_ollama, "dify.chat", chat="on", chat_timeout=2)
    elapsed = time.monotonic() - start
    found = finding(report, "dify.chat")
    assert found.status is Status.WARN and "CHAT_TIMEOUT (2 s)" in found.summary, found
    assert elapsed < 2 + 3, elapsed  # its own deadline, not a hang


def test_chat_ok_and_in_the_check_after_a_restart(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    stack = restore_healthy_stack
    verified = verification_check(settings_for(stack, session_ollama))
    found = finding(verified, "dify.chat")
    assert found.status is Status.OK and "llama3.2:latest answered" in found.summary, found
    assert finding(verified, "dify.plugin").status is Status.OK


def test_chat_with_a_model_that_cannot_chat(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    stack = restore_healthy_stack
    session_ollama.set_models(
        [FakeModel("llama3.2:latest", capabilities=("embedding",)), *DEFAULT_MODELS[1:]]
    )
    found = finding(check(stack, session_ollama, "dify.chat"), "dify.chat")
    assert found.status is Status.FAIL and "HTTP 400" in found.summary, found
    assert "ollama.capabilities" in found.remedy


# --- dify.errors --------------------------------------------------------------------------
ERROR_LINES = {
    "api": [
        "HTTPConnectionPool(host='127.0.0.1', port=11434): Max retries exceeded with url: "
        "/api/chat (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object "
        "at 0x7f1>: Failed to establish a new connection: [Errno 111] Connection refused'))",
    ]
    * 3
    + [
        "Credentials validation failed: HTTPConnectionPool(host='host.docker.internal', "
        'port=11434): Max retries exceeded (Caused by NameResolutionError("<urllib3.'
        "connection.HTTPConnection object>: Failed to resolve 'host.docker.internal' ([Errno "
        '-2] Name or service not known)"))',
        "psycopg2.errors.DataException: expected 1536 dimensions, not 1024",
        "redis.exceptions.ConnectionError: Error 111 connecting to redis:6379. Connection refused.",
    ],
    "worker": [
        "requests.exceptions.ProxyError: HTTPConnectionPool(host='squid', port=3128): "
        "Unable to connect to proxy",
        'model "qwen2:7b" not found, try pulling it first',
        "this model does not support embeddings",
    ],
    "plugin_daemon": [
        "HTTPConnectionPool(host='host.docker.internal', port=11434): Read timed out. "
        "(read timeout=300)",
        "[ERROR]invoke llm failed: killed by timeout",
        "registry.ollama.ai/library/llama3.2:latest does not support tools",
        "[ERROR]no available node, plugin not found",
    ],
}


def test_dify_error_lines_linked_to_findings(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    stack = restore_healthy_stack
    secret = stack.env_value("SECRET_KEY") or ""
    assert secret
    for service, lines in ERROR_LINES.items():
        # the first line of each kind is quoted: a secret in it must not be
        stack.log(service, *[f"{line} [session {secret}]" for line in lines])
    report = check(stack, session_ollama, "dify.errors")
    found = finding(report, "dify.errors")
    assert found.status is Status.WARN, found
    assert found.summary.startswith("Dify logged 3 x `Connection refused`")
    assert "-> dify.base_url" in found.summary
    expected = {
        "3 x `Connection refused` in api -> dify.base_url",
        "1 x `Credentials validation failed: NameResolutionError` in api -> container.dns",
        "1 x `ProxyError` in worker -> container.proxy",
        "1 x `Read timed out (read timeout=300)` in plugin_daemon -> dify.timeouts",
        "1 x `killed by timeout` in plugin_daemon -> dify.timeouts",
        "1 x `does not support tools` in plugin_daemon -> ollama.capabilities",
        "1 x `does not support embeddings` in worker -> ollama.capabilities",
        "1 x `model not found` in worker -> ollama.models",
        "1 x `no available node, plugin not found` in plugin_daemon -> dify.plugin",
        "1 x `expected N dimensions` in api (the knowledge base was embedded",
    }
    for line in expected:
        assert line in found.detail, (line, found.detail)
    assert "redis:6379" not in found.detail  # a refused Redis is not Ollama's
    assert secret not in json.dumps(report.to_json())


def test_hung_ollama_bound_holds_with_the_new_probes(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    """The new probes ask Ollama too (/api/show): still CHECK_TIMEOUT + 1 s in all."""
    session_ollama.set_mode("hung")
    start = time.monotonic()
    report = check(restore_healthy_stack, session_ollama, check_timeout=2.0)
    elapsed = time.monotonic() - start
    assert elapsed <= 3.0, elapsed
    for fid in ("ollama.capabilities", "dify.timeouts"):
        assert finding(report, fid).status is Status.SKIP
    assert finding(report, "dify.plugin").status is Status.OK  # does not need Ollama


def test_cli_check_chat_flag(healthy_stack: DifyStack, session_ollama: FakeOllama):
    """`dify-ollama check --chat` adds dify.chat to the whole report; without it, no chat."""
    env = dict(
        os.environ,
        DIFY_COMPOSE_PROJECT=healthy_stack.project,
        OLLAMA_URL=session_ollama.url,
        CHECK_TIMEOUT="3",
        CHAT_TIMEOUT="20",
    )
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-m", "cli.main", "check", "--json", "--chat"]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=60, check=False, cwd=root
    )
    assert proc.returncode == 0, proc.stderr
    ids = {f["id"]: f for f in json.loads(proc.stdout)["findings"]}
    assert ids["dify.chat"]["status"] == "ok" and len(ids) == 21
    plain = subprocess.run(
        argv[:-1], capture_output=True, text=True, env=env, timeout=60, check=False, cwd=root
    )
    assert "dify.chat" not in {f["id"] for f in json.loads(plain.stdout)["findings"]}
