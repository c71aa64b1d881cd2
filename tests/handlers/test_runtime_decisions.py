"""The decisions of dify.plugin, ollama.capabilities, dify.timeouts, dify.chat and dify.errors,
from data (no engine): every failure mode issue 10 names, and what each one tells the user."""

from __future__ import annotations

import json
import time

import pytest

from handlers import error_texts, service_logs
from handlers.container_exec import HttpProbe
from handlers.dify_db import CredentialRow
from handlers.plugin_db import Installation, parse
from handlers.probes import chat, errors, models, plugin
from handlers.results import Finding, Status
from handlers.runtime_facts import ModelShow

TENANT = "8d0a2b8e-6a8f-4a43-9a55-3f4f2c1d7e01"
OLLAMA_UID = "langgenius/ollama:0.1.4@" + "a" * 64


def installed(tenant: str = TENANT) -> Installation:
    return Installation(tenant, OLLAMA_UID, "local", True, True)


def plugin_verdict(
    lines: list[str] = (),  # type: ignore[assignment]
    installs: list[Installation] | None = None,
    env: dict[str, str] | None = None,
    db_error: str | None = None,
) -> Finding:
    return plugin.verdict(
        [TENANT],
        [installed()] if installs is None else installs,
        db_error,
        plugin.runtime_troubles(lines),
        env or {},
        "dify_plugin",
    )


# --- dify.plugin ----------------------------------------------------------------------------
def test_plugin_installed_and_quiet_is_ok() -> None:
    found = plugin_verdict(["[INFO]plugin daemon started"])
    assert found.status is Status.OK and "0.1.4" in found.summary


def test_plugin_missing_for_a_tenant() -> None:
    found = plugin_verdict(installs=[installed("other-tenant")])
    assert found.status is Status.FAIL and "not installed for 1 of 1" in found.summary
    assert "Marketplace" in found.remedy and TENANT in found.detail


def test_plugin_runtime_failed() -> None:
    found = plugin_verdict(
        [
            f"[INFO]init environment for plugin {OLLAMA_UID}",
            "[ERROR]init environment failed: exit status 1, retry in 30s",
        ]
    )
    assert found.status is Status.FAIL and "runtime did not start" in found.summary
    assert "download" not in found.summary and "logs plugin_daemon" in found.remedy


def test_plugin_offline_install_names_the_settings() -> None:
    found = plugin_verdict(
        [
            f"[INFO]init environment for plugin {OLLAMA_UID}",
            "[ERROR]init environment failed: failed to install dependencies: "
            "Could not connect to pypi.org (timed out), retry in 30s",
        ],
        env={"PIP_MIRROR_URL": "https://user:s3cret@mirror.local/simple"},
    )
    assert found.status is Status.FAIL and "package download" in found.summary
    for name in ("PIP_MIRROR_URL", "PLUGIN_PYTHON_ENV_INIT_TIMEOUT", "HTTP_PROXY", "recreate"):
        assert name in found.remedy
    assert "s3cret" not in found.remedy and "mirror.local" in found.remedy


def test_plugin_newer_daemon_wording_and_its_own_variable_names() -> None:
    """Newer daemons log the cause, then "failed to init environment" (launcher_local.go);
    compose hands PLUGIN_PYTHON_ENV_INIT_TIMEOUT to the daemon as PYTHON_ENV_INIT_TIMEOUT."""
    found = plugin_verdict(
        [
            f"[INFO]init environment for plugin {OLLAMA_UID}",
            "[ERROR]failed to install dependencies: connection timed out",
            "failed to init environment",
        ],
        env={"PYTHON_ENV_INIT_TIMEOUT": "640", "https_proxy": "http://u:pw@proxy:3128"},
    )
    assert found.status is Status.FAIL and "package download" not in found.summary
    assert "init environment failed" in found.summary
    hit = error_texts.classify("failed to init environment")
    assert hit is not None and hit[0].finding == "dify.plugin"
    offline = plugin_verdict(
        [
            f"[INFO]init environment for plugin {OLLAMA_UID}",
            "[ERROR]init environment failed: pip install timed out",
        ],
        env={"PYTHON_ENV_INIT_TIMEOUT": "640", "https_proxy": "http://u:pw@proxy:3128"},
    )
    assert "PLUGIN_PYTHON_ENV_INIT_TIMEOUT=640" in offline.remedy
    assert "HTTPS_PROXY=http://[REDACTED]@proxy:3128" in offline.remedy
    assert "u:pw" not in offline.remedy


def test_plugin_installation_without_its_package() -> None:
    lost = Installation(TENANT, OLLAMA_UID, "local", False, True)
    found = plugin_verdict(installs=[lost])
    assert found.status is Status.FAIL and "refers to a package" in found.summary
    assert "package row missing" in found.detail and "Reinstall" in found.remedy


def test_plugin_signature_rejected() -> None:
    found = plugin_verdict(
        [
            "[ERROR]plugin verification has been enabled, and the plugin you want to install "
            "has a bad signature"
        ]
    )
    assert found.status is Status.FAIL and "bad signature" in found.summary
    assert "FORCE_VERIFYING_SIGNATURE=false" in found.remedy


def test_plugin_runtime_not_found() -> None:
    found = plugin_verdict(["[ERROR]failed to invoke: no available node, plugin not found"])
    assert found.status is Status.FAIL and "runtime not found" in found.summary


def test_another_plugins_failure_is_not_ours() -> None:
    found = plugin_verdict(
        [
            "[INFO]init environment for plugin langgenius/tavily:0.0.5@" + "b" * 64,
            "[ERROR]init environment failed: failed to install dependencies, retry in 30s",
        ]
    )
    assert found.status is Status.OK and "langgenius/tavily" in found.detail


def test_plugin_database_unreadable_is_not_ok() -> None:
    found = plugin_verdict(installs=[], db_error="psql could not connect")
    assert found.status is Status.WARN and "not verified" in found.summary


def test_plugin_rows_parse() -> None:
    text = json.dumps(
        {"tenant": TENANT, "uid": OLLAMA_UID, "runtime": "local", "packages": 1, "declared": 0}
    )
    (row,) = parse(text + "\nnot json\n")
    assert row.version == "0.1.4" and row.package and not row.declared


# --- ollama.capabilities ---------------------------------------------------------------------
def row(model: str, model_type: str = "llm", **config: str) -> CredentialRow:
    body = {"base_url": "http://host.docker.internal:11434", "context_size": "4096", **config}
    return CredentialRow(
        "provider_model_credentials", "1", TENANT, "langgenius/ollama/ollama", model, model_type,
        "c", json.dumps(body),
    )  # fmt: skip


def show(model: str, caps: tuple[str, ...], ctx: int = 131072) -> ModelShow:
    return ModelShow(model, caps, ctx, None)


@pytest.mark.parametrize(
    ("config", "model_type", "caps", "status", "error", "setting"),
    [
        ({"function_call_support": "true"}, "llm", ("completion",), Status.FAIL,
         "does not support tools", "Function call support = No"),
        ({}, "text-embedding", ("completion", "tools"), Status.FAIL,
         "does not support embeddings", "Text Embedding"),
        ({"vision_support": "true"}, "llm", ("completion", "tools"), Status.FAIL,
         "image input", "Vision support = No"),
        ({"context_size": "200000"}, "llm", ("completion",), Status.WARN,
         "cut", "Model context size = 131072"),
        ({"context_size": "8192"}, "llm", ("completion",), Status.WARN,
         "truncating input prompt limit=4096", "OLLAMA_CONTEXT_LENGTH=8192"),
        ({}, "llm", ("embedding",), Status.FAIL, "does not support chat", "remove m1 as LLM"),
    ],
)  # fmt: skip
def test_capability_mismatches(
    config: dict[str, str],
    model_type: str,
    caps: tuple[str, ...],
    status: Status,
    error: str,
    setting: str,
) -> None:
    configured = models.configured([row("m1", model_type, **config)])
    found, lines = models.mismatches(configured, {"m1": show("m1", caps)}, {"m1": 4096})
    assert len(found) == 1, found
    assert found[0].severity is status and error in found[0].error
    assert setting in found[0].setting and "m1" in found[0].what and lines


def test_matching_capabilities_are_fine() -> None:
    configured = models.configured(
        [row("llama3.2", function_call_support="true"), row("nomic", "text-embedding")]
    )
    shows = {
        "llama3.2": show("llama3.2", ("completion", "tools")),
        "nomic": show("nomic", ("embedding",)),
    }
    found, lines = models.mismatches(configured, shows, {"llama3.2": 4096})
    assert found == [] and len(lines) == 2


# --- dify.timeouts -----------------------------------------------------------------------------
def test_cold_load_risk() -> None:
    pulled = {"big:70b": {"size": 40 * 1024**3}, "small": {"size": 2 * 1024**3}}
    risks, lines = models.load_risks(["big:70b", "small"], pulled, {}, 300, 64 * 1024**3)
    assert [r.model for r in risks] == ["big:70b"] and risks[0].estimate > 150
    assert "big:70b: not loaded, 40.0 GiB" in lines[0]
    risks, _ = models.load_risks(["big:70b"], pulled, {"big:70b": {"expires_at": "x"}}, 300, 0)
    assert risks == []  # loaded: no cold load ahead
    risks, _ = models.load_risks(["small"], pulled, {}, 300, 1024**3)
    assert [r.model for r in risks] == ["small"]  # does not fit in the memory available


# --- dify.chat -----------------------------------------------------------------------------------
TARGET = chat.Target("plugin_daemon", "c" * 64, "llama3.2:latest", "http://u:pw@h:11434")


def answer(load_s: float) -> str:
    return json.dumps(
        {"message": {"role": "assistant", "content": "Hi"}, "done": True,
         "load_duration": int(load_s * 1e9), "total_duration": int((load_s + 0.1) * 1e9)}
    )  # fmt: skip


def test_chat_ok_slow_and_timeout() -> None:
    ok = chat.judge(TARGET, HttpProbe("u", "wget", 200, answer(0.01), None, "", 150), 60)
    assert ok.status is Status.OK and "Dify can chat" in ok.summary and "pw" not in ok.detail
    slow = chat.judge(TARGET, HttpProbe("u", "wget", 200, answer(45), None, "", 45000), 60)
    assert slow.status is Status.WARN and "45 s" in slow.summary
    hung = chat.judge(TARGET, HttpProbe("u", "curl", None, "", "timeout", "timed out", 60000), 60)
    assert hung.status is Status.WARN and "CHAT_TIMEOUT (60 s)" in hung.summary


def test_chat_refused_and_unknown_model() -> None:
    refused = chat.judge(
        TARGET, HttpProbe("u", "curl", None, "", "refused", "Connection refused", 3), 60
    )
    assert refused.status is Status.FAIL and "refused" in refused.summary
    assert "container.reach" in refused.remedy
    missing = chat.judge(TARGET, HttpProbe("u", "wget", 404, "", None, "404", 3), 60)
    assert missing.status is Status.FAIL and "ollama pull llama3.2:latest" in missing.remedy


def test_chat_body_asks_for_one_token_without_streaming() -> None:
    body = json.loads(chat.chat_body("m"))
    assert body["stream"] is False and body["options"] == {"num_predict": 1}


# --- dify.errors ---------------------------------------------------------------------------------
ERROR_LINES = [
    (
        "HTTPConnectionPool(host='127.0.0.1', port=11434): Max retries exceeded with url: "
        "/api/chat (Caused by NewConnectionError(...: [Errno 111] Connection refused'))",
        "Connection refused",
        "dify.base_url",
    ),
    (
        "Caused by NameResolutionError(\"<urllib3.connection.HTTPConnection>: Failed to resolve "
        "'host.docker.internal' ([Errno -2] Name or service not known)\") url: /api/chat",
        "NameResolutionError",
        "container.dns",
    ),
    (
        "requests.exceptions.ProxyError: HTTPConnectionPool(host='squid', port=3128): Unable to "
        "connect to proxy",
        "ProxyError",
        "container.proxy",
    ),
    (
        "HTTPConnectionPool(host='host.docker.internal', port=11434): Read timed out. "
        "(read timeout=300)",
        "Read timed out (read timeout=300)",
        "dify.timeouts",
    ),
    ("[ERROR]invoke llm failed: killed by timeout", "killed by timeout", "dify.timeouts"),
    (
        "Run failed: registry.ollama.ai/library/gemma:2b does not support tools",
        "does not support tools",
        "ollama.capabilities",
    ),
    (
        "InvokeBadRequestError: this model does not support embeddings",
        "does not support embeddings",
        "ollama.capabilities",
    ),
    (
        'model "qwen2.5:7b" not found, try pulling it first',
        "model not found",
        "ollama.models",
    ),
    (
        "plugin verification has been enabled, and the plugin you want to install has a bad "
        "signature",
        "plugin signature rejected",
        "dify.plugin",
    ),
    ("[ERROR]init environment failed: exit status 1, retry in 30s", "init environment failed",
     "dify.plugin"),
    ("PluginDaemonInternalServerError: plugin runtime not found", "plugin runtime not found",
     "dify.plugin"),
    ("req_id: x PluginInvokeError: no available node, plugin not found",
     "no available node, plugin not found", "dify.plugin"),
    ("psycopg2.errors.DataException: expected 1536 dimensions, not 1024", "expected N dimensions",
     None),
    ("ToolSSRFError: Access to 'http://host.docker.internal:11434/api/generate' was blocked by "
     "SSRF protection. The URL may point to a private or local network address.",
     "blocked by SSRF protection", None),
]  # fmt: skip


@pytest.mark.parametrize(("line", "label", "finding"), ERROR_LINES)
def test_each_error_text_is_known_and_linked(line: str, label: str, finding: str | None) -> None:
    found = error_texts.classify(line)
    assert found is not None, line
    text, wrapped = found
    assert (text.label, text.finding, wrapped) == (label, finding, False)
    # Dify wraps validation errors: the real error is read after the colon
    wrapped_line = f"Credentials validation failed: {line}"
    inner = error_texts.classify(wrapped_line)
    assert inner is not None and inner[0].label == label and inner[1] is True


def test_refused_to_something_else_is_not_blamed_on_ollama() -> None:
    assert (
        error_texts.classify("redis: Error 111 connecting to redis:6379. Connection refused.")
        is None
    )
    # an SSRF block of some intranet page is not an Ollama problem; of Ollama's host it is
    intranet = "Access to 'http://10.0.0.9/wiki' was blocked by SSRF protection."
    assert error_texts.classify(intranet) is None
    found = error_texts.classify(intranet.replace("10.0.0.9", "gpu-1:8080"), ["gpu-1:8080"])
    assert found is not None and found[0] is error_texts.SSRF
    assert "SSRF_PROXY_ALLOW_PRIVATE_IPS" in found[0].hint


def test_errors_verdict_counts_and_first_line() -> None:
    refused = ERROR_LINES[0][0]
    logs = [
        service_logs.RecentLog("api", (refused,) * 14 + ("fine",), True),
        service_logs.RecentLog("plugin_daemon", (ERROR_LINES[5][0],), True),
        service_logs.RecentLog("worker", (), False, "no log within 3 s"),
    ]
    hits = error_texts.scan([(log.service, log.lines) for log in logs])
    found = errors.verdict(logs, hits)
    assert found.status is Status.WARN
    assert "14 x `Connection refused`" in found.summary and "-> dify.base_url" in found.summary
    assert "1 x `does not support tools` in plugin_daemon -> ollama.capabilities" in found.detail
    assert found.detail.count("Max retries exceeded") == 1  # the first sample, never more
    assert "worker: log not read" in found.detail


def test_errors_quiet_logs_are_ok_and_unread_logs_are_not() -> None:
    quiet = [service_logs.RecentLog("api", ("GET /health 200",), True)]
    assert errors.verdict(quiet, []).status is Status.OK
    unread = [service_logs.RecentLog("api", (), False, "boom")]
    assert errors.verdict(unread, []).status is Status.WARN


def test_error_scan_is_linear_on_hostile_lines() -> None:
    hostile = "expected " + "9" * 5000 + " dimensions, not " * 2000 + "1"
    start = time.monotonic()
    for _ in range(20):
        error_texts.classify(hostile[:10_000], ["h:1"] * 50)
    assert time.monotonic() - start < 2.0


# --- skips that are answers (handlers/probes/__init__.py) -----------------------------------
def test_not_applicable_skips_stay_skips_and_a_gap_is_a_warning() -> None:
    from handlers.probes import REQUIRES, account_for_skips

    assert {"dify.plugin", "dify.chat", "dify.errors"} <= set(REQUIRES)
    passed = tuple(
        Finding(fid, Status.OK, "fine")
        for fid in ("docker.engine", "dify.project", "dify.containers", "dify.base_url")
    )
    zero_x = Finding("dify.plugin", Status.SKIP, f"{plugin.no_plugins()}: api and worker call")
    not_run = Finding("dify.chat", Status.SKIP, f"{chat.not_run()}: llama3.2 is not loaded")
    gap = Finding("dify.chat", Status.SKIP, "needs dify.base_url (psql timed out)")
    out = {f.summary: f for f in account_for_skips((*passed, zero_x, not_run, gap))}
    assert out[zero_x.summary].status is Status.SKIP
    assert out[not_run.summary].status is Status.SKIP
    warned = out["not checked: " + gap.summary]
    assert warned.status is Status.WARN
