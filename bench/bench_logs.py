"""Benchmark: `logs` on a container with a big log, against the naive ways, in one run.

One container (private engine, labelled as a Dify project's `api`) writes at least 500 MB of
Dify-like log lines, a secret in every 50th line. Then, each in a fresh process (so peak memory
is the request's own):
  * ours: fetch_logs(service, 200) -> render -> the poster (a recording Slack context), the way
    the bot answers `/dify-ollama logs api 200`;
  * baseline "tail as a string": docker-py `logs(tail="200")` (a string silently means "all"),
    then the last 200 lines, redaction and render;
  * baseline "read everything": stream the whole log keeping the last 200 lines (flat memory,
    but the engine ships the whole log);
  * for reference, `docker logs --tail 200` (the manual way; no redaction).
Figures: wall time to reach the poster, peak memory growth (ru_maxrss delta of the process and
tracemalloc peak of the request). Targets: <= 1 s and < 20 MB.
Redaction throughput (MB/s) on Dify-like text with the stock .env.example + canaries, compared
with a loop of str.replace over the same literal secrets and a naive regex alternation.

Run: eval "$(scripts/test-engine up)"; scripts/build-test-images
     /tmp/venv/bin/python bench/bench_logs.py [--size-mb 520] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import string
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The generator runs inside the container (python3 of the Debian test image): lines in batches
# so 500 MB take seconds; every 50th line carries the DB password inside a DSN.
GEN = r"""
import os, sys
out = sys.stdout.buffer
target = int(sys.argv[1])
secret = os.environ["DB_PASSWORD"].encode()
pad = b"0123456789abcdef" * 6
written = 0
i = 0
batch = []
while written < target:
    i += 1
    if i % 50 == 0:
        line = b"2025-11-26 07:14:05,123 ERROR [ext_database.py:42] connect failed: " \
               b"postgresql://postgres:%s@db:5432/dify attempt=%d password=%s\n" % (
                   secret, i, secret)
    else:
        line = b"2025-11-26 07:14:05,123 INFO [app.py:%d] GET /console/api/workspaces/" \
               b"current/models 200 %d ms trace=%s\n" % (i % 999, i % 5000, pad)
    batch.append(line)
    if len(batch) == 4000:
        data = b"".join(batch)
        out.write(data)
        written += len(data)
        batch = []
data = b"".join(batch)
out.write(data)
written += len(data)
out.write(b"BENCH-DONE bytes=%d lines=%d\n" % (written, i + 1))
out.flush()
import time
time.sleep(3600)
"""

TAIL = 200


# --- the child: one way of getting the last 200 lines to the poster, in a fresh process ------
class RecordingPoster:
    """Stands in for the Slack context: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def post(self, channel: str, text: str, blocks: Any = None, thread_ts: Any = None) -> str:
        self.sent.append(("post", len(text) + len(json.dumps(blocks or []))))
        return "1700000000.000001"

    def upload_text(
        self, channel: str, thread_ts: Any, filename: str, content: str, *a: Any
    ) -> None:
        self.sent.append(("upload", len(content)))


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(mode: str, project: str, folder: str, runs: int) -> dict[str, Any]:
    import docker

    from bot.subcommands.logs import deliver, render
    from config.settings import Settings
    from handlers.envfile import read_env_file
    from handlers.logs import LogResult, clean_line, fetch_logs
    from handlers.project import discover
    from handlers.redact import Redactor

    settings = Settings(dify_compose_project=project, dify_dir=Path(folder))
    client = docker.DockerClient(base_url=os.environ["DOCKER_HOST"], version="1.41", timeout=600)
    info = discover(client, settings).containers["api"]

    def finish(raw_lines: list[bytes], poster: RecordingPoster) -> int:
        """What the baselines still have to do after getting lines: redact, render, post."""
        env = read_env_file(Path(folder) / ".env").values
        container_env = client.api.inspect_container(info.id)["Config"]["Env"]
        redactor = Redactor.from_sources(env, container_env)
        text = redactor.redact("\n".join(clean_line(r) for r in raw_lines))
        result = LogResult(
            "api",
            info.name,
            info.id[:12],
            "running",
            project,
            TAIL,
            len(raw_lines),
            len(raw_lines),
            text,
            False,
            0,
        )
        deliver(poster, "C1", None, render(result, "<@U1>"))  # type: ignore[arg-type]
        return len(raw_lines)

    def once() -> int:
        poster = RecordingPoster()
        if mode == "ours":
            result = fetch_logs(settings, "api", TAIL, client=client)
            deliver(poster, "C1", None, render(result, "<@U1>"))  # type: ignore[arg-type]
            return result.lines_returned
        if mode == "string-tail":
            data = client.api.logs(info.id, tail=str(TAIL))  # the pitfall: means "all"
            return finish(data.splitlines()[-TAIL:], poster)
        if mode == "read-all":
            last: deque[bytes] = deque(maxlen=TAIL)
            pending = b""
            for chunk in client.api.logs(info.id, stream=True, follow=False):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                last.extend(complete)
            if pending:
                last.append(pending)
            return finish(list(last), poster)
        raise SystemExit(f"unknown mode {mode}")

    rss_before = _maxrss_mb()
    times = []
    lines = 0
    for _ in range(runs):
        started = time.perf_counter()
        lines = once()
        times.append(time.perf_counter() - started)
    rss_growth = _maxrss_mb() - rss_before
    tracemalloc.start()
    once()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "mode": mode,
        "lines": lines,
        "first_s": times[0],
        "median_s": statistics.median(times),
        "max_s": max(times),
        "rss_growth_mb": rss_growth,
        "tracemalloc_peak_mb": peak / 1e6,
    }


def run_child(mode: str, project: str, folder: str, runs: int) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--project",
            project,
            "--dir",
            folder,
            "--runs",
            str(runs),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# --- redaction throughput --------------------------------------------------------------------
def redaction_figures(env_values: dict[str, str], container_env: list[str]) -> dict[str, float]:
    from handlers.redact import Redactor, secret_values

    redactor = Redactor.from_sources(env_values, container_env)
    secret = next(v for k, v in env_values.items() if k == "DB_PASSWORD")
    lines = []
    for i in range(200_000):
        if i % 50 == 0:
            lines.append(
                f"2025-11-26 07:14:05,123 ERROR connect failed: postgresql://postgres:"
                f"{secret}@db:5432/dify attempt={i} Authorization: Bearer abcdefgh{i}"
            )
        else:
            lines.append(
                f"2025-11-26 07:14:05,123 INFO [app.py:{i % 999}] GET /console/api/"
                f"workspaces/current/models 200 {i % 5000} ms user={i:08x} tenant=t{i}"
            )
    text = "\n".join(lines)
    megabytes = len(text.encode()) / 1e6

    def rate(fn: Any) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - started)
        return megabytes / best

    literals = sorted(
        secret_values(env_values) | secret_values(dict(e.split("=", 1) for e in container_env)),
        key=len,
        reverse=True,
    )

    def replace_loop() -> str:
        out = text
        for value in literals:
            out = out.replace(value, "[REDACTED]")
        return out

    naive = re.compile("|".join(re.escape(v) for v in literals))

    # Scaling: an .env with many more secrets (200 random 20-character values).
    rng = random.Random(5)
    many = ["".join(rng.choices(string.ascii_letters + string.digits, k=20)) for _ in range(200)]
    many_redactor = Redactor(frozenset(many))

    def many_loop() -> str:
        out = text
        for value in many:
            out = out.replace(value, "[REDACTED]")
        return out

    return {
        "text_mb": megabytes,
        "literals": float(len(literals)),
        "redactor_whole_mb_s": rate(lambda: redactor.redact(text)),
        "redactor_lines_mb_s": rate(lambda: sum(1 for _ in redactor.redact_lines(lines))),
        "literal_pass_only_mb_s": rate(lambda: redactor._literal_res[0].findall(text)),
        "baseline_replace_loop_mb_s": rate(replace_loop),
        "baseline_naive_alternation_mb_s": rate(lambda: naive.sub("[REDACTED]", text)),
        "literal_pass_200_secrets_mb_s": rate(lambda: many_redactor._literal_res[0].findall(text)),
        "baseline_replace_loop_200_secrets_mb_s": rate(many_loop),
    }


# --- the run ---------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=520)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child")
    parser.add_argument("--project")
    parser.add_argument("--dir")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.project, args.dir, args.runs)))
        return 0

    import docker

    from handlers.envfile import read_env_file
    from tests.rig.log_containers import Canaries, LogProject
    from tests.rig.stack import DEBIAN_IMAGE, docker_host

    os.environ.setdefault("DOCKER_HOST", docker_host())
    client = docker.DockerClient(base_url=os.environ["DOCKER_HOST"], timeout=600)
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
        project = LogProject(client, Path(tmp), Canaries())
        try:
            env = {**project.canaries.container_env, "GEN_CODE": GEN}
            started = time.monotonic()
            api = project.add(
                "api",
                f'exec python3 -c "$GEN_CODE" {args.size_mb * 1_000_000}',
                env=env,
                image=DEBIAN_IMAGE,
            )
            deadline = time.monotonic() + 600
            while b"BENCH-DONE" not in api.logs(tail=1):
                if time.monotonic() > deadline:
                    raise RuntimeError("the log generator did not finish in 600 s")
                time.sleep(1)
            last = api.logs(tail=1).decode().split()
            written = int(last[1].split("=")[1])
            log_path = client.api.inspect_container(api.id)["LogPath"]
            try:
                on_disk = os.path.getsize(log_path)
            except OSError:
                on_disk = -1
            print(
                f"log: {written / 1e6:.0f} MB of lines ({last[2]}) written in "
                f"{time.monotonic() - started:.1f} s; json-file on disk "
                f"{on_disk / 1e6:.0f} MB"
            )

            results = [run_child("ours", project.name, str(project.dir), args.runs)]
            results.append(run_child("string-tail", project.name, str(project.dir), 1))
            results.append(run_child("read-all", project.name, str(project.dir), 1))
            cli_times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                subprocess.run(
                    ["docker", "logs", "--tail", str(TAIL), api.name],
                    capture_output=True,
                    check=True,
                    timeout=600,
                )
                cli_times.append(time.perf_counter() - t0)

            print(f"\nlast {TAIL} lines to the poster (each way in a fresh process):")
            print(f"{'way':<44}{'first s':>9}{'median s':>10}{'RSS +MB':>9}{'heap pk MB':>11}")
            names = {
                "ours": "ours: fetch_logs(tail=200) + render",
                "string-tail": 'baseline: docker-py logs(tail="200")',
                "read-all": "baseline: stream all, keep last 200",
            }
            for r in results:
                print(
                    f"{names[r['mode']]:<44}{r['first_s']:>9.3f}{r['median_s']:>10.3f}"
                    f"{r['rss_growth_mb']:>9.1f}{r['tracemalloc_peak_mb']:>11.1f}"
                )
            print(
                f"{'reference: docker logs --tail 200 (CLI)':<44}{cli_times[0]:>9.3f}"
                f"{statistics.median(cli_times):>10.3f}{'-':>9}{'-':>11}"
            )
            ours = results[0]
            ok_time = ours["max_s"] <= 1.0
            ok_mem = ours["rss_growth_mb"] < 20 and ours["tracemalloc_peak_mb"] < 20
            print(
                f"\ntarget <= 1 s: {'PASS' if ok_time else 'FAIL'} (worst {ours['max_s']:.3f} s);"
                f" memory < 20 MB: {'PASS' if ok_mem else 'FAIL'}"
            )

            env_values = read_env_file(project.dir / ".env").values
            container_env = client.api.inspect_container(api.id)["Config"]["Env"]
            red = redaction_figures(env_values, container_env)
            print(
                f"\nredaction on {red['text_mb']:.0f} MB of Dify-like text, "
                f"{red['literals']:.0f} literal secrets (stock .env.example + canaries):"
            )
            for key, value in red.items():
                if key.endswith("_mb_s"):
                    print(f"  {key:<40}{value:>8.1f} MB/s")
            print(
                "\nJSON "
                + json.dumps(
                    {
                        "results": results,
                        "cli_s": cli_times,
                        "log_mb": written / 1e6,
                        "redaction": red,
                    }
                )
            )
            return 0 if ok_time and ok_mem else 1
        finally:
            project.cleanup()


if __name__ == "__main__":
    sys.exit(main())
