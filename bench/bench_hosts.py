"""Benchmark: `dify-ollama check --host all` over SSH for 1, 3 and 10 hosts, against one
local `dify-ollama check` in the same run.

The hosts are network namespaces on this machine (tests/rig/netns_hosts.py), each with
Debian's sshd (the project's forced command) and a fake Ollama; ten host entries point at the
three namespaces in turn. Every namespace's Dify is the same labelled-container project on the
private engine, which the local baseline checks too. Each figure is the wall time of a fresh
`dify-ollama` process (what a user waits for), median and min-max of --runs runs; the fan-out
opens one SSH connection per host entry per process.

Run (root: it makes network namespaces): eval "$(scripts/test-engine up)"
     .venv/bin/python bench/bench_hosts.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from tests.rig.fake_ollama import FakeOllama  # noqa: E402
from tests.rig.log_containers import Canaries, LogProject, printf_script  # noqa: E402
from tests.rig.netns_hosts import CLI, HostRig  # noqa: E402
from tests.rig.stack import docker_host  # noqa: E402

CHECK_TIMEOUT = "2"
ONLY = ["--only", "ollama.host"]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int, dict[str, Any]]:
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    seconds = time.monotonic() - started
    try:
        data = json.loads(done.stdout)
    except ValueError:
        data = {}
    return seconds, done.returncode, data


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s  ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = max(1, min(args.runs, 50))
    root = Path(tempfile.mkdtemp(prefix="bench-hosts-"))
    client = docker.DockerClient(base_url=docker_host(), timeout=30)
    project = LogProject(client, root / "dify", Canaries())
    (root / "rig").mkdir()
    rig = HostRig(root / "rig", 3)
    ollama = FakeOllama(bind="0.0.0.0").start()  # the local check's Ollama, as the hosts' ones
    try:
        api = project.add("api", printf_script(["ready"]))
        project.add("worker", "sleep 600")
        project.wait_for_line(api, b"ready")
        env = {"DOCKER_HOST": docker_host()}
        if os.environ.get("DOCKER_CONFIG"):
            env["DOCKER_CONFIG"] = os.environ["DOCKER_CONFIG"]
        rig.start(env)
        for host in rig.hosts:
            rig.start_ollama(host)
        settings = {"DIFY_COMPOSE_PROJECT": project.name, "DIFY_DIR": str(project.dir)}
        base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)}
        local_env = {
            **base_env,
            **env,
            **settings,
            "OLLAMA_URL": ollama.url,
            "CHECK_TIMEOUT": CHECK_TIMEOUT,
            "STATE_DIR": str(root / "state"),
        }
        results: dict[str, list[float]] = {}
        # Two workloads: the full check, and one cheap probe (`--only ollama.host`) whose
        # time is mostly the process start and, remotely, SSH: what the transport costs.
        for label, only in (("full check", []), ("--only ollama.host", ONLY)):
            measure(results, label, only, runs, rig, settings, base_env, local_env)
        local_median = statistics.median(results["full check: local (no SSH)"])
        print(f"bench_hosts: {runs} runs each, 2-core machine, CHECK_TIMEOUT={CHECK_TIMEOUT}")
        print("  (every host's CLI runs on this same machine: 10 hosts share its 2 cores)")
        for name, values in results.items():
            ratio = statistics.median(values) / local_median
            print(f"  {name:<42} {spread(values)}  x{ratio:.2f} of a local full check")
        return 0
    finally:
        rig.close()
        ollama.stop()
        project.cleanup()
        client.close()


def measure(
    results: dict[str, list[float]],
    label: str,
    only: list[str],
    runs: int,
    rig: HostRig,
    settings: dict[str, str],
    base_env: dict[str, str],
    local_env: dict[str, str],
) -> None:
    local = [timed([str(CLI), "check", *only, "--json"], local_env) for _ in range(runs)]
    results[f"{label}: local (no SSH)"] = [s for s, _, _ in local]
    for count in (1, 3, 10):
        entries = {
            f"h{i:02d}": rig.entry(rig.hosts[i % 3], settings=settings, deadline=30)
            for i in range(count)
        }
        hosts_file = rig.hosts_file(entries, f"hosts{count}.yaml")
        argv = [str(CLI), "check", "--host", "all", *only, "--json"]
        times = []
        for _ in range(runs):
            seconds, _code, data = timed(argv, {**base_env, "HOSTS_FILE": str(hosts_file)})
            rows = data.get("hosts") or []
            reached = [r for r in rows if not r["report"]["findings"][0]["id"].startswith("host.")]
            if len(reached) != count:
                raise SystemExit(f"{count} hosts: only {len(reached)} answered: {rows[:1]}")
            times.append(seconds)
        results[f"{label}: --host all, {count:2d} host(s)"] = times


if __name__ == "__main__":
    sys.exit(main())
