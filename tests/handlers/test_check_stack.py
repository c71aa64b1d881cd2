"""`check` against the look-alike Dify stack on the private engine: one test per failure mode
of the field notes, a healthy stack, a hung Ollama and an unreachable engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from config.settings import Settings
from handlers.check import run_check
from handlers.results import Finding, Report, Status
from tests.rig.fake_ollama import FakeModel, FakeOllama
from tests.rig.stack import DifyStack, OllamaRow, bridge_gateway

pytestmark = pytest.mark.docker

GiB = 1024**3


def settings_for(stack: DifyStack, ollama: FakeOllama, **extra: object) -> Settings:
    return Settings(
        dify_compose_project=stack.project,
        ollama_url=ollama.url,
        check_timeout=extra.pop("check_timeout", 3),  # type: ignore[arg-type]
        docker_host=os.environ.get("DOCKER_HOST"),
        **extra,  # type: ignore[arg-type]
    )


def failing(report: Report) -> dict[str, str]:
    return {f.id: f.summary for f in report.findings if f.status is Status.FAIL}


def finding(report: Report, finding_id: str) -> Finding:
    found = report.finding(finding_id)
    assert found is not None, f"{finding_id} missing from the report"
    return found


def test_healthy_stack_reports_no_failure(healthy_stack: DifyStack, session_ollama: FakeOllama):
    report = run_check(settings_for(healthy_stack, session_ollama))
    assert failing(report) == {}, report.to_json()
    # every documented finding id is there, in the documented order
    assert [f.id for f in report.findings] == [
        "docker.engine",
        "dify.project",
        "dify.containers",
        "dify.health",
        "ollama.host",
        "ollama.bind",
        "ollama.models",
        "container.dns",
        "container.reach",
        "container.proxy",
        "dify.base_url",
        "env.file",
        "env.drift",
        "dify.web",
        "host.resources",
        "dify.secrets",
        "dify.plugin",
        "ollama.capabilities",
        "dify.timeouts",
        "dify.errors",
    ]  # dify.chat runs only when asked for (check --chat)
    assert finding(report, "container.reach").status is Status.OK
    assert "plugin_daemon" in finding(report, "container.reach").summary
    assert finding(report, "dify.project").status is Status.OK
    assert str(healthy_stack.dir) in finding(report, "dify.project").summary
    # the stock .env.example keeps Dify's public default secrets: named, never shown
    secrets = finding(report, "dify.secrets")
    assert secrets.status is Status.WARN and "DB_PASSWORD" in secrets.detail
    assert "difyai123456" not in json.dumps(report.to_json())
    assert report.exit_code == 0


def test_cli_json_on_healthy_stack(healthy_stack: DifyStack, session_ollama: FakeOllama):
    env = dict(
        os.environ,
        DIFY_COMPOSE_PROJECT=healthy_stack.project,
        OLLAMA_URL=session_ollama.url,
        CHECK_TIMEOUT="3",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "check", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout[-3000:]
    data = json.loads(proc.stdout)
    assert data["status"] in ("ok", "warn")
    assert {"id", "status", "summary", "detail", "remedy"} <= set(data["findings"][0])
    assert isinstance(data["duration_ms"], int)
    # where the time went: each finding's own duration, the start-up, and the spans
    assert all(
        isinstance(f["duration_ms"], int) and f["duration_ms"] >= 0 for f in data["findings"]
    )
    assert 0 < data["timing"]["before_first_probe_ms"] < 60_000
    names = [s["name"] for s in data["timing"]["spans"]]
    assert "probe container.reach" in names and any(n.startswith("exec ") for n in names)
    assert any(n.endswith("@api") for n in names), names  # container ids named by service
    env_text = healthy_stack.env_path.read_text()
    for line in env_text.splitlines():
        key, _, value = line.partition("=")
        if key in ("SECRET_KEY", "PLUGIN_DAEMON_KEY", "PLUGIN_DIFY_INNER_API_KEY", "DB_PASSWORD"):
            assert value not in proc.stdout


def test_loopback_base_url_in_database(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    """Failure mode 1, the seed incident: the base URL points at 127.0.0.1."""
    stack = restore_healthy_stack
    stack.set_rows([OllamaRow(base_url=f"http://127.0.0.1:{session_ollama.port}")])
    report = run_check(settings_for(stack, session_ollama))
    base = finding(report, "dify.base_url")
    assert base.status is Status.FAIL and base.fixable
    assert "loopback" in base.detail and "host.docker.internal:11434" in base.remedy
    reach = finding(report, "container.reach")
    assert reach.status is Status.FAIL and "refused" in reach.summary
    assert "points at the container itself" in reach.remedy
    assert report.exit_code == 1


def test_gateway_name_unresolved_without_host_gateway(dify_stack_factory, fake_ollama):
    """Failure mode 2: Linux engine, no extra_hosts -> host.docker.internal does not resolve."""
    stack = dify_stack_factory(ollama_rows=[OllamaRow(base_url=fake_ollama.container_url())])
    stack.up()
    report = run_check(settings_for(stack, fake_ollama))
    dns = finding(report, "container.dns")
    assert dns.status is Status.FAIL and dns.fixable
    assert "extra_hosts" in dns.remedy and "host-gateway" in dns.remedy
    assert "plugin_daemon" in dns.summary
    reach = finding(report, "container.reach")
    assert reach.status is Status.FAIL and "(dns)" in reach.summary
    # the override alone is not enough: the containers must be recreated (mode 10's cousin)
    stack.write_override(
        {
            "services": {
                s: {"extra_hosts": ["host.docker.internal:host-gateway"]}
                for s in ("api", "worker", "worker_beat", "plugin_daemon")
            }
        }
    )
    report = run_check(settings_for(stack, fake_ollama))
    dns = finding(report, "container.dns")
    assert dns.status is Status.FAIL and "recreate" in dns.remedy and not dns.fixable
    stack.recreate(["api", "worker", "worker_beat", "plugin_daemon"])
    report = run_check(settings_for(stack, fake_ollama))
    assert failing(report) == {}, report.to_json()


def test_ollama_bound_to_loopback(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    """Failure mode 3: Ollama's default bind; the host probe works, containers are refused."""
    session_ollama.rebind("127.0.0.1")
    report = run_check(settings_for(restore_healthy_stack, session_ollama))
    assert finding(report, "ollama.host").status is Status.OK
    bind = finding(report, "ollama.bind")
    assert bind.status is Status.FAIL and "127.0.0.1" in bind.summary
    assert "OLLAMA_HOST=0.0.0.0:11434" in bind.remedy
    reach = finding(report, "container.reach")
    assert reach.status is Status.FAIL and "OLLAMA_HOST" in reach.remedy


def test_proxy_variable_captures_ollama(dify_stack_factory, fake_ollama):
    """Failure mode 5: HTTP_PROXY in plugin_daemon without a NO_PROXY for the host."""
    stack = dify_stack_factory(
        ollama_rows=[OllamaRow(base_url=fake_ollama.container_url())],
        extra_hosts=True,
        plugin_daemon_env={"HTTP_PROXY": "http://user:hunter22@127.0.0.1:3128"},
    )
    stack.up()
    report = run_check(settings_for(stack, fake_ollama))
    proxy = finding(report, "container.proxy")
    assert proxy.status is Status.FAIL
    assert "plugin_daemon" in proxy.summary and "NO_PROXY" in proxy.remedy
    assert "hunter22" not in json.dumps(report.to_json())
    assert finding(report, "container.reach").status is Status.FAIL


def test_v1_suffix_on_base_url(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    """Failure mode 6: `/v1` (or `/api`) appended: the plugin gets 404s."""
    url = session_ollama.container_url()
    restore_healthy_stack.set_rows(
        [
            OllamaRow(base_url=url + "/v1"),
            OllamaRow(
                base_url=url + "/api/", model_name="nomic-embed-text", model_type="text-embedding"
            ),
        ]
    )
    report = run_check(settings_for(restore_healthy_stack, session_ollama))
    base = finding(report, "dify.base_url")
    assert base.status is Status.FAIL and base.fixable
    assert "/v1" in base.detail and "/api" in base.detail and "2 model credential" in base.summary


def test_model_not_pulled(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    """Failure mode 7: the model configured in Dify is not in /api/tags."""
    restore_healthy_stack.set_rows(
        [OllamaRow(base_url=session_ollama.container_url(), model_name="qwen2.5:7b")]
    )
    report = run_check(settings_for(restore_healthy_stack, session_ollama))
    models = finding(report, "ollama.models")
    assert models.status is Status.FAIL
    assert "qwen2.5:7b" in models.summary and "ollama pull qwen2.5:7b" in models.remedy


def test_model_larger_than_free_memory(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    """Failure mode 8's cause: a model that cannot fit in memory loads slowly or not at all."""
    session_ollama.set_models(
        [FakeModel("llama3.2:latest"), FakeModel("huge:405b", size=4096 * GiB)]
    )
    report = run_check(settings_for(restore_healthy_stack, session_ollama))
    resources = finding(report, "host.resources")
    assert resources.status is Status.WARN and "huge:405b" in resources.summary


def test_plugin_daemon_down(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    """Failure mode 9: plugin_daemon stopped -> "plugin runtime not found" in Dify."""
    restore_healthy_stack.stop("plugin_daemon")
    report = run_check(settings_for(restore_healthy_stack, session_ollama))
    containers = finding(report, "dify.containers")
    assert containers.status is Status.FAIL and "plugin_daemon" in containers.summary
    assert containers.service == "plugin_daemon"
    assert "up -d plugin_daemon" in containers.remedy
    assert finding(report, "dify.health").status is Status.FAIL


def test_env_edited_but_not_recreated(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    """Failure mode 10: .env changed, containers still run with the old environment."""
    env = restore_healthy_stack.env_path
    text = env.read_text()
    old = next(line for line in text.splitlines() if line.startswith("OPENAI_API_BASE="))
    env.write_text(text.replace(old, "OPENAI_API_BASE=http://host.docker.internal:11434/v1"))
    report = run_check(settings_for(restore_healthy_stack, session_ollama))
    drift = finding(report, "env.drift")
    assert drift.status is Status.FAIL and "OPENAI_API_BASE" in drift.detail
    assert "restart" in drift.remedy
    restore_healthy_stack.recreate(["api", "worker", "worker_beat", "plugin_daemon"])
    report = run_check(settings_for(restore_healthy_stack, session_ollama))
    assert finding(report, "env.drift").status is Status.OK


def test_env_file_loopback_and_missing(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    env = restore_healthy_stack.env_path
    text = env.read_text()
    old = next(line for line in text.splitlines() if line.startswith("OPENAI_API_BASE="))
    env.write_text(text.replace(old, "OPENAI_API_BASE=http://127.0.0.1:11434/v1"))
    report = run_check(settings_for(restore_healthy_stack, session_ollama, check_timeout=2))
    env_finding = finding(report, "env.file")
    assert env_finding.status is Status.FAIL and env_finding.fixable
    assert "legacy" in env_finding.detail  # Dify 1.x: the report tells the truth about it
    env.unlink()
    report = run_check(settings_for(restore_healthy_stack, session_ollama, check_timeout=2))
    env_finding = finding(report, "env.file")
    assert env_finding.status is Status.FAIL and "does not exist" in env_finding.summary
    assert "cp " in env_finding.remedy


def test_web_entry_down(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    restore_healthy_stack.stop("nginx")
    report = run_check(settings_for(restore_healthy_stack, session_ollama, check_timeout=2))
    web = finding(report, "dify.web")
    assert web.status is Status.FAIL and "EXPOSE_NGINX_PORT" in web.remedy


def test_hung_ollama_answers_within_deadline(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    session_ollama.set_mode("hung")
    timeout = 2.0
    start = time.monotonic()
    report = run_check(settings_for(restore_healthy_stack, session_ollama, check_timeout=timeout))
    elapsed = time.monotonic() - start
    assert elapsed <= timeout + 1.0, elapsed
    host = finding(report, "ollama.host")
    assert host.status is Status.FAIL and "hung" in host.summary
    reach = finding(report, "container.reach")
    assert reach.status is Status.FAIL and "timeout" in reach.summary


def test_ollama_down(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    session_ollama.down()
    report = run_check(settings_for(restore_healthy_stack, session_ollama, check_timeout=2))
    host = finding(report, "ollama.host")
    assert host.status is Status.FAIL and "refused" in host.summary
    assert finding(report, "ollama.bind").status is Status.FAIL
    assert finding(report, "ollama.models").status is Status.SKIP


def test_engine_unreachable(tmp_path: Path):
    settings = Settings(
        docker_host=f"unix://{tmp_path}/no-engine.sock",
        check_timeout=1,
        ollama_url="http://127.0.0.1:9",
    )
    report = run_check(settings)
    engine = finding(report, "docker.engine")
    assert engine.status is Status.FAIL and "does not exist" in engine.summary
    assert finding(report, "dify.project").status is Status.SKIP
    assert finding(report, "container.reach").status is Status.SKIP
    assert report.exit_code == 1


def test_firewall_drops_bridge_traffic(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    """Failure mode 4: the host's own curl works, containers time out."""
    session_ollama.set_mode("firewalled")
    report = run_check(settings_for(restore_healthy_stack, session_ollama, check_timeout=2))
    assert finding(report, "ollama.host").status is Status.OK
    assert finding(report, "ollama.bind").status is Status.OK
    reach = finding(report, "container.reach")
    assert reach.status is Status.FAIL and "timeout" in reach.summary
    assert "firewall" in reach.remedy and "11434" in reach.remedy


def test_no_secret_reaches_the_report(restore_healthy_stack: DifyStack, session_ollama: FakeOllama):
    """Canary secrets in .env, in a base URL's credentials and in the bot's own token are
    masked in every finding, whatever evidence a probe quotes."""
    stack = restore_healthy_stack
    canary = "canary-Secret-4f9a1c77"
    text = stack.env_path.read_text()
    stack.env_path.write_text(
        text + f"\nSECRET_KEY={canary}\nOPENAI_API_BASE=http://u:{canary}@127.0.0.1:1/v1\n"
    )
    stack.set_rows([OllamaRow(base_url=f"http://admin:{canary}@127.0.0.1:{session_ollama.port}")])
    report = run_check(
        settings_for(stack, session_ollama, check_timeout=2, slack_bot_token="xoxb-1-canary-token")
    )
    dumped = json.dumps(report.to_json())
    assert canary not in dumped and "xoxb-1-canary-token" not in dumped
    assert finding(report, "dify.base_url").status is Status.FAIL
    assert finding(report, "env.file").status is Status.FAIL


def exec_spans(report: Report) -> dict[str, list[str]]:
    """The `docker exec`s the check ran, by service (from the report's timing)."""
    found: dict[str, list[str]] = {}
    for span in report.timing["spans"]:
        name = span["name"]
        if name.startswith("exec "):
            tool, _, service = name.removeprefix("exec ").partition(" @")
            found.setdefault(service, []).append(tool)
    return found


def test_one_exec_per_container_that_has_python(
    healthy_stack: DifyStack, session_ollama: FakeOllama
):
    """api (curl + python3) and worker (python3 only) answer health, reach and name
    resolution in one exec each; plugin_daemon (busybox) needs one per URL; db one psql for
    Dify's rows and plugin_daemon's database (dify.plugin) together."""
    report = run_check(settings_for(healthy_stack, session_ollama))
    assert failing(report) == {}, report.to_json()
    execs = exec_spans(report)
    assert execs["api"] == ["python3"] and execs["worker"] == ["python3"], execs
    assert execs["db_postgres"] == ["psql"], execs
    assert sorted(execs["plugin_daemon"]) == ["wget", "wget"], execs  # health, Ollama
    # the database said what the .env guessed: no second round of execs after it answered
    assert sum(len(v) for v in execs.values()) == 5, execs


def test_hung_ollama_does_not_hide_health(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    """Health and Ollama share an exec; a hung Ollama still leaves the health answer in it."""
    session_ollama.set_mode("hung")
    report = run_check(settings_for(restore_healthy_stack, session_ollama, check_timeout=2))
    assert finding(report, "dify.health").status is Status.OK, report.to_json()
    assert "timeout" in finding(report, "container.reach").summary


def test_base_url_other_than_the_guess_is_probed_after_the_database(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
):
    """The surveys guess the URL from .env; when the database says otherwise the reach probe
    asks again at the database's URL, and reports on that one."""
    stack = restore_healthy_stack
    # The host's own address on the private engine's bridge (dotest0 by default, docker0 on
    # an engine started elsewhere): a URL no guess from .env names, that the containers reach.
    client = docker.DockerClient(base_url=os.environ["DOCKER_HOST"])
    try:
        host = bridge_gateway(client)
    finally:
        client.close()
    assert host, "the engine's bridge has no gateway address"
    stack.set_rows([OllamaRow(base_url=f"http://{host}:{session_ollama.port}")])
    report = run_check(settings_for(stack, session_ollama))
    reach = finding(report, "container.reach")
    assert reach.status is Status.OK and f"{host}:{session_ollama.port}" in reach.detail
    assert "host.docker.internal" not in reach.detail
