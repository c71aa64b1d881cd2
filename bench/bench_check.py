"""Benchmark: `dify-ollama check` against the manual procedure it replaces.

On one look-alike Dify stack (private engine, fake Ollama on the host), in one run:
  * `dify-ollama check` as a user runs it (a fresh process each time), healthy and hung Ollama;
  * the baseline: the field notes' manual procedure replayed command by command, sequentially,
    as people type it today (ps, lsof, curl on the host, docker ps, docker exec ... curl,
    docker exec ... env, docker logs --tail 20).
Targets (2-core machine): healthy check <= 1.0 s and <= 0.5x the baseline; hung Ollama
<= CHECK_TIMEOUT + 1 s (the manual curl has no bound at all; here it is cut at CAP seconds).

Run: eval "$(scripts/test-engine up)"; scripts/build-test-images
     .venv/bin/python bench/bench_check.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rig.fake_ollama import FakeOllama  # noqa: E402
from tests.rig.stack import DifyStack, healthy_stack  # noqa: E402

RUNS = 5
CAP = 10.0  # seconds a baseline command may hang before the bench gives up on it
CHECK_TIMEOUT = 3.0


def timed(
    argv: list[str], env: dict[str, str] | None = None, cap: float = CAP
) -> tuple[float, int]:
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, env=env, timeout=cap, check=False)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = -1
    return time.monotonic() - start, code


def check_once(stack: DifyStack, ollama: FakeOllama) -> tuple[float, int]:
    env = dict(
        os.environ,
        DIFY_COMPOSE_PROJECT=stack.project,
        OLLAMA_URL=ollama.url,
        CHECK_TIMEOUT=str(CHECK_TIMEOUT),
        PYTHONPATH=str(ROOT),
    )
    return timed([sys.executable, "-m", "cli.main", "check"], env=env)


def literal_steps(stack: DifyStack, ollama: FakeOllama) -> list[list[str]]:
    """The field notes' diagnosis, word for word: Ollama on the host, then the api container."""
    api = stack.container("api").name
    url = ollama.container_url()
    return [
        ["ps", "-eo", "pid,comm"],
        ["lsof", "-nP", f"-iTCP:{ollama.port}", "-sTCP:LISTEN"],
        ["curl", "-s", f"{ollama.url}/api/version"],
        ["docker", "ps", "--format", "{{.Names}}"],
        ["docker", "exec", api, "curl", "-s", f"{url}/api/version"],
        ["docker", "exec", api, "env"],
        ["docker", "logs", api, "--tail", "20"],
    ]


def full_steps(stack: DifyStack, ollama: FakeOllama) -> list[list[str]]:
    """The same procedure extended until it establishes every fact `check` reports: the
    commands an on-call engineer types to cover all 16 findings by hand, one after another."""
    names = {s: stack.container(s).name for s in ("api", "worker", "plugin_daemon", "db_postgres")}
    url = ollama.container_url()
    get = {
        "api": ["curl", "-s", f"{url}/api/version"],
        "worker": [
            "python3",
            "-c",
            f"import urllib.request;urllib.request.urlopen('{url}/api/version')",
        ],
        "plugin_daemon": ["wget", "-O-", f"{url}/api/version"],
    }
    resolve = {
        "api": ["getent", "hosts", "host.docker.internal"],
        "worker": ["getent", "hosts", "host.docker.internal"],
        "plugin_daemon": ["cat", "/etc/hosts"],
    }
    compose = ["docker-compose", "-p", stack.project, "--project-directory", str(stack.dir)]
    steps = [
        ["ps", "-eo", "pid,comm"],
        ["lsof", "-nP", f"-iTCP:{ollama.port}", "-sTCP:LISTEN"],
        ["curl", "-s", f"{ollama.url}/api/version"],
        ["curl", "-s", f"{ollama.url}/api/tags"],
        [*compose, "ps"],
        # drift and extra_hosts: what compose would set now, what the containers were given
        [*compose, "config"],
        ["docker", "inspect", names["plugin_daemon"], names["api"], names["worker"]],
        ["docker", "exec", names["api"], "curl", "-sf", "http://localhost:5001/health"],
        [
            "docker",
            "exec",
            names["plugin_daemon"],
            "wget",
            "-O-",
            "http://localhost:5002/health/check",
        ],
    ]
    for service in ("plugin_daemon", "api", "worker"):
        steps.append(["docker", "exec", names[service], *resolve[service]])
        steps.append(["docker", "exec", names[service], *get[service]])
        steps.append(["docker", "exec", names[service], "env"])
    steps += [
        [
            "docker",
            "exec",
            names["db_postgres"],
            "psql",
            "-U",
            "postgres",
            "-d",
            "dify",
            "-c",
            "select model_name, encrypted_config from provider_model_credentials",
        ],
        ["cat", str(stack.env_path)],
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            f"http://127.0.0.1:{stack.nginx_port}",
        ],
        ["free", "-m"],
        ["df", "-h", str(stack.dir)],
        ["docker", "logs", names["api"], "--tail", "20"],
    ]
    return steps


def manual_once(steps: list[list[str]]) -> tuple[float, bool]:
    """Run the commands one after the other; True if one of them hung (cut at CAP)."""
    total, hung = 0.0, False
    for argv in steps:
        seconds, code = timed(argv)
        total += seconds
        hung |= code == -1
    return total, hung


def main() -> int:
    if not os.environ.get("DOCKER_HOST"):
        print('DOCKER_HOST unset: eval "$(scripts/test-engine up)" first', file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp, FakeOllama(bind="0.0.0.0") as ollama:
        url = ollama.container_url()
        stack = healthy_stack(tmp, url)
        try:
            stack.up()
            check_once(stack, ollama)  # warm the page cache and the engine's exec path
            healthy = [check_once(stack, ollama) for _ in range(RUNS)]
            codes = {c for _, c in healthy}
            literal = [manual_once(literal_steps(stack, ollama))[0] for _ in range(3)]
            full_list = full_steps(stack, ollama)
            full = [manual_once(full_list)[0] for _ in range(3)]
            ollama.set_mode("hung")
            hung = [check_once(stack, ollama) for _ in range(3)]
            manual_hung, hung_flag = manual_once(full_list)
        finally:
            ollama.set_mode("up")
            stack.down()
    h = statistics.median(s for s, _ in healthy)
    lit = statistics.median(literal)
    m = statistics.median(full)
    hh = max(s for s, _ in hung)
    print(f"healthy check (median of {RUNS}, fresh process): {h:.2f} s  exit codes {sorted(codes)}")
    print(f"baseline, same facts by hand ({len(full_list)} commands, median of 3): {m:.2f} s")
    print(
        f"ratio check/baseline:                            {h / m:.2f}x  (target <= 0.50x: "
        f"{'met' if h <= 0.5 * m else 'MISSED'})"
    )
    print(f"field notes' 7 commands literally (4 of 16 facts): {lit:.2f} s  (ratio {h / lit:.2f}x)")
    print(f"healthy target <= 1.0 s:                         {'met' if h <= 1.0 else 'MISSED'}")
    print(
        f"hung Ollama check (worst of 3):                  {hh:.2f} s  "
        f"(target <= {CHECK_TIMEOUT + 1:.1f} s: {'met' if hh <= CHECK_TIMEOUT + 1 else 'MISSED'})"
    )
    print(
        f"hung Ollama, baseline by hand:                   {manual_hung:.2f} s"
        + (f" (cut at {CAP:.0f} s per command; unbounded by hand)" if hung_flag else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
