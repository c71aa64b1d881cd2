"""Benchmark of /healthz and of LOG_FORMAT=json, printed as figures (docs/running.md records
them), each against a baseline measured in the same run.

- /healthz on a running `dify-ollama serve` (HTTP mode, gunicorn) with the real engine probe:
  latency p50/p99 of N sequential GETs, against the same server's 404 for an unknown path
  (the baseline: the server's own cost without gathering health).
- The JSON log formatter (redacting every field) against the text formatter (redacting the
  line): microseconds per record.

Run: .venv/bin/python bench/bench_health.py [--n 500] [--docker-host unix:///...]
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.logsetup import JsonFormatter, RedactingTextFormatter, redactor  # noqa: E402
from config.settings import Settings  # noqa: E402
from tests.bot.fakes.slack_api import BOT_TOKEN, SlackApiDouble  # noqa: E402

SECRET = "8f742231b10e8888abcd99a1b2c385a5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed_gets(port: int, path: str, n: int) -> tuple[list[float], int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times, status = [], 0
    for _ in range(n):
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        times.append((time.perf_counter() - started) * 1000)
        status = response.status
    conn.close()
    return times, status


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_healthz(n: int, docker_host: str) -> None:
    slack = SlackApiDouble().start()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
        env.update(
            PYTHONPATH=str(ROOT),
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.base_url,
            STATE_DIR=f"{tmp}/state",
            DOCKER_HOST=docker_host,
            HOME=tmp,
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    timed_gets(port, "/healthz", 1)
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("serve did not start") from None
                    time.sleep(0.05)
            base, _ = timed_gets(port, "/nope", n)
            health, status = timed_gets(port, "/healthz", n)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            slack.stop()
    print(f"/healthz, {n} sequential GETs, engine {docker_host} -> HTTP {status}")
    for name, values in (("404 (baseline)", base), ("/healthz", health)):
        print(
            f"  {name:<15} p50 {statistics.median(values):6.2f} ms"
            f"  p99 {pct(values, 0.99):6.2f} ms  max {max(values):6.2f} ms"
        )


def bench_formatters(n: int) -> None:
    settings = Settings(_env_file=None, slack_bot_token=BOT_TOKEN)  # type: ignore[call-arg,arg-type]
    redact = redactor(settings)
    record = logging.LogRecord(
        "bot.runtime", logging.INFO, __file__, 1, "check for %s in %s took %d ms", None, None
    )
    record.args = ("U012AB3CD", "C0INCIDENT", 812)
    print(f"log formatters, {n} records (redaction included)")
    for name, formatter in (
        ("text (baseline)", RedactingTextFormatter(redact)),
        ("json", JsonFormatter(redact)),
    ):
        started = time.perf_counter()
        for _ in range(n):
            formatter.format(record)
        per = (time.perf_counter() - started) / n * 1e6
        print(f"  {name:<15} {per:6.1f} us/record")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument(
        "--docker-host",
        default=os.environ.get("DOCKER_HOST", "unix:///run/dify-ollama-test-engine/docker.sock"),
    )
    args = parser.parse_args()
    if not 1 <= args.n <= 100_000:
        parser.error("--n must be 1..100000")
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}", flush=True)
    bench_healthz(args.n, args.docker_host)
    bench_formatters(args.n * 20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
