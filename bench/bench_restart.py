"""Benchmark: how long the api service is down during `dify-ollama restart` (targeted) against
the seed's `docker compose down && docker compose up -d`, in one run on one look-alike stack.

Each round changes `.env` (OPENAI_API_BASE, as fix-env does) so that the shared-environment
services need recreating, then applies it one way or the other while a monitor polls the engine
every 50 ms: the api is "down" while no api container is running *and* healthy (its
healthcheck is `curl -f http://localhost:5001/health`, every 1 s in the look-alike stack).
The db and redis container ids are recorded before and after.
Target: targeted downtime <= 0.5x the seed's, db and redis keep their container ids.

Run: eval "$(scripts/test-engine up)"; scripts/build-test-images
     .venv/bin/python bench/bench_restart.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.settings import Settings  # noqa: E402
from handlers import restart  # noqa: E402
from tests.rig.fake_ollama import FakeOllama  # noqa: E402
from tests.rig.stack import DifyStack, compose_env, docker_host, healthy_stack  # noqa: E402

ROUNDS = 3
POLL = 0.05
SETTLE_CAP = 120.0


class ApiMonitor:
    """Polls the engine; accumulates the time no api container is running and healthy."""

    def __init__(self, stack: DifyStack) -> None:
        self.stack = stack
        self.down = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def healthy(self) -> bool:
        summaries = self.stack.client.api.containers(
            filters={
                "label": [
                    f"com.docker.compose.project={self.stack.project}",
                    "com.docker.compose.service=api",
                ]
            }
        )
        return any(
            s.get("State") == "running" and "(healthy)" in str(s.get("Status")) for s in summaries
        )

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            up = self.healthy()
            now = time.monotonic()
            if not up:
                self.down += now - last
            last = now
            self.samples += 1
            time.sleep(POLL)

    def __enter__(self) -> ApiMonitor:
        self._thread.start()
        return self

    def settle(self) -> None:
        """Keep measuring until the api is healthy again (the command may return before)."""
        deadline = time.monotonic() + SETTLE_CAP
        while not self.healthy():
            if time.monotonic() > deadline:
                raise RuntimeError("api did not come back within the cap")
            time.sleep(POLL)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def ids(stack: DifyStack) -> dict[str, str]:
    """api, the metadata database (under the key "db") and redis: their container ids."""
    wanted = {"db": stack.db_service, "redis": "redis", "api": "api"}
    return {key: stack.container(service).id[:12] for key, service in wanted.items()}


def set_base(stack: DifyStack, value: str) -> None:
    lines = stack.read_env().splitlines(keepends=True)
    out = [
        f"OPENAI_API_BASE={value}\n" if ln.startswith("OPENAI_API_BASE=") else ln for ln in lines
    ]
    stack.env_path.write_text("".join(out))


def targeted(stack: DifyStack, settings: Settings) -> tuple[float, float, dict[str, str]]:
    before = ids(stack)
    with ApiMonitor(stack) as monitor:
        start = time.monotonic()
        result = restart.apply_configuration(settings, user="bench", source="cli")
        wall = time.monotonic() - start
        monitor.settle()
    assert result.ready and "api" in result.recreated, result.lines()
    after = ids(stack)
    return monitor.down, wall, {s: "kept" if before[s] == after[s] else "new" for s in before}


def seed_way(stack: DifyStack) -> tuple[float, float, dict[str, str]]:
    """The seed's `down && up -d`, with the Compose that created the stack."""
    before = ids(stack)
    base = ["-p", stack.project, "--project-directory", str(stack.dir)]
    with ApiMonitor(stack) as monitor:
        start = time.monotonic()
        for args in (["down"], ["up", "-d"]):
            done = stack.compose_command.run(
                [*base, *args], cwd=stack.dir, env=compose_env(), timeout=300
            )
            if done.returncode != 0:
                raise subprocess.CalledProcessError(done.returncode, args, done.stderr)
        monitor.settle()
        wall = time.monotonic() - start
    after = ids(stack)
    return monitor.down, wall, {s: "kept" if before[s] == after[s] else "new" for s in before}


def main() -> int:
    os.environ.setdefault("DOCKER_HOST", docker_host())
    with FakeOllama(bind="0.0.0.0") as ollama, tempfile.TemporaryDirectory() as tmp:
        url = ollama.container_url()
        stack = healthy_stack(tmp, url)
        settings = Settings(
            dify_compose_project=stack.project,
            docker_host=os.environ["DOCKER_HOST"],
            state_dir=Path(tmp) / "state",
            ollama_url=ollama.url,
        )
        try:
            stack.up()
            rows = []
            for round_no in range(ROUNDS):
                # Every apply follows a real .env change (alternating), as after fix-env.
                set_base(stack, f"{url}/v1/")
                t_down, t_wall, t_ids = targeted(stack, settings)
                set_base(stack, f"{url}/v1")
                s_down, s_wall, s_ids = seed_way(stack)
                rows.append((t_down, t_wall, t_ids, s_down, s_wall, s_ids))
                print(
                    f"round {round_no + 1}: targeted api down {t_down:5.2f} s (command "
                    f"{t_wall:5.2f} s, db {t_ids['db']}, redis {t_ids['redis']})  |  "
                    f"down && up -d: api down {s_down:5.2f} s (command {s_wall:5.2f} s, db "
                    f"{s_ids['db']}, redis {s_ids['redis']})",
                    flush=True,
                )
        finally:
            stack.down()
    t_med = statistics.median(r[0] for r in rows)
    s_med = statistics.median(r[3] for r in rows)
    ratio = t_med / s_med if s_med else float("inf")
    kept = all(r[2]["db"] == "kept" and r[2]["redis"] == "kept" for r in rows)
    print()
    print(
        f"api downtime, median of {ROUNDS}: targeted restart {t_med:.2f} s, "
        f"seed down && up -d {s_med:.2f} s, ratio {ratio:.2f}x (target <= 0.50x)"
    )
    print(f"db and redis keep their container ids under the targeted restart: {kept}")
    ok = ratio <= 0.5 and kept
    print("TARGET MET" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
