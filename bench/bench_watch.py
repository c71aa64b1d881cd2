"""Benchmark: what the watch costs an idle `dify-ollama serve`, against `serve` without it.

Both run at the same time (same machine load), in HTTP mode (gunicorn: a master and one
worker), against one healthy look-alike Dify stack on the private engine and the fake Ollama,
with a recording Slack Web API double on loopback. One has WATCH_CHANNEL and WATCH_INTERVAL=10
(a full check every 10 s, plus the engine event stream); the other has no watch. After a
warm-up, CPU time (user + system of both processes and of their waited-for children) and RSS
are read from /proc at the start and the end of the window.

Targets: the watch under 2% of one core, RSS within 20 MB of serve without it.
Run: DOCKER_HOST=... .venv/bin/python bench/bench_watch.py [--minutes 10] [--interval 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.bot.fakes.slack_api import BOT_TOKEN, SlackApiDouble  # noqa: E402
from tests.rig.fake_ollama import FakeOllama  # noqa: E402
from tests.rig.stack import healthy_stack  # noqa: E402

SECRET = "8f742231b10e8888abcd99a1b2c385a5"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree(pid: int) -> list[int]:
    """The process and its children (gunicorn's worker), from /proc."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime (fields 14-17 of stat; here offset by the 2 cut off)
        total += sum(int(f) for f in fields[11:15])
    return total / TICKS


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def start_serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=30.0)
    args = parser.parse_args()
    if not os.environ.get("DOCKER_HOST"):
        print('DOCKER_HOST unset: eval "$(scripts/test-engine up)" first', file=sys.stderr)
        return 2
    slack = SlackApiDouble().start()
    with tempfile.TemporaryDirectory() as tmp, FakeOllama(bind="0.0.0.0") as ollama:
        stack = healthy_stack(Path(tmp) / "stack", ollama.container_url())
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            stack.up()
            base = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("SLACK_", "DIFY_", "WATCH_", "METRICS_"))
            }
            base.update(
                PYTHONPATH=str(ROOT),
                SLACK_BOT_TOKEN=BOT_TOKEN,
                SLACK_SIGNING_SECRET=SECRET,
                SLACK_API_URL=slack.base_url,
                DIFY_COMPOSE_PROJECT=stack.project,
                DIFY_DIR=str(stack.dir),
                OLLAMA_URL=ollama.url,
            )
            for name, extra in (
                ("watch", {"WATCH_CHANNEL": "CWATCH", "WATCH_INTERVAL": str(args.interval)}),
                ("plain", {}),
            ):
                env = {**base, **extra, "STATE_DIR": str(Path(tmp) / name), "HOME": tmp}
                procs[name] = start_serve(env, free_port())
            time.sleep(args.warmup)
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"serve ({name}) exited with {proc.returncode}", file=sys.stderr)
                    return 1
            pids = {name: tree(proc.pid) for name, proc in procs.items()}
            cpu0 = {name: cpu_seconds(p) for name, p in pids.items()}
            started = time.monotonic()
            peak = {name: 0.0 for name in procs}
            while time.monotonic() - started < args.minutes * 60:
                time.sleep(5)
                for name, p in pids.items():
                    peak[name] = max(peak[name], rss_mb(p))
            wall = time.monotonic() - started
            cpu = {name: (cpu_seconds(p) - cpu0[name]) / wall * 100 for name, p in pids.items()}
            rss = {name: rss_mb(p) for name, p in pids.items()}
            alerts = [
                str(c.params.get("text"))[:120]
                for c in slack.of("chat.postMessage")
                if c.params.get("channel") == "CWATCH" and not c.params.get("thread_ts")
            ]
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            stack.down()
            slack.stop()
    extra_cpu = cpu["watch"] - cpu["plain"]
    extra_rss = rss["watch"] - rss["plain"]
    print(f"window {wall / 60:.1f} min, watch interval {args.interval:g} s, 2 processes each")
    for name, label in (("watch", "serve with the watch:"), ("plain", "serve without it:")):
        print(
            f"{label:25}CPU {cpu[name]:.2f}% of one core, RSS {rss[name]:.1f} MB "
            f"(peak {peak[name]:.1f} MB)"
        )
    print(
        f"the watch costs:         {extra_cpu:+.2f}% of one core (target < 2%: "
        f"{'met' if extra_cpu < 2 else 'MISSED'}), {extra_rss:+.1f} MB RSS (target within 20 MB: "
        f"{'met' if abs(extra_rss) <= 20 else 'MISSED'})"
    )
    print(f"alerts posted by the watch (the rig's .env keeps Dify's default secrets): {alerts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
