"""Benchmark: the newest Dify layout beside 1.13.3, in one run.

For each layout (1.13.3 under Compose v1, as the earlier figures; 1.15.0 on PostgreSQL and on
MySQL under Compose v2), on a healthy look-alike stack built from the release's real files:
  * `dify-ollama check` wall time as a user runs it (a fresh process, median of RUNS);
  * api downtime of the targeted `dify-ollama restart` after a `.env` change (OPENAI_API_BASE,
    as fix-env writes it) against the seed's `down && up -d` with the same Compose, ROUNDS
    alternating rounds each (bench/bench_restart.py's monitor: the api is down while no api
    container is running and healthy), and whether db and redis keep their containers.
Targets: check <= 1.0 s on every layout; targeted downtime <= 0.5x the seed's.

Run: eval "$(scripts/test-engine up)"; scripts/build-test-images
     .venv/bin/python bench/bench_layouts.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_check import check_once  # noqa: E402
from bench.bench_restart import seed_way, set_base, targeted  # noqa: E402
from config.settings import Settings  # noqa: E402
from tests.rig.compose import SYSTEM_PLUGIN_DIRS, v2_plugin_dir  # noqa: E402
from tests.rig.fake_ollama import FakeOllama  # noqa: E402
from tests.rig.stack import docker_host, healthy_stack  # noqa: E402

LAYOUTS = [
    ("1.13.3", "postgresql", "v1"),
    ("1.15.0", "postgresql", "v2"),
    ("1.15.0", "mysql", "v2"),
]
RUNS = 5
ROUNDS = 3


@dataclass(frozen=True)
class Figures:
    check: float  # median wall time of a fresh `dify-ollama check`
    codes: list[int]
    targeted: float  # median api downtime of `dify-ollama restart`
    targeted_wall: float
    seed: float  # median api downtime of `down && up -d`
    seed_wall: float
    kept: bool  # db and redis kept their containers under every targeted restart

    @property
    def ratio(self) -> float:
        return self.targeted / self.seed if self.seed else float("inf")


def measure(layout: tuple[str, str, str], ollama: FakeOllama, tmp: Path) -> Figures:
    release, db, compose = layout
    url = ollama.container_url()
    stack = healthy_stack(tmp, url, release=release, db=db, compose=compose)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        dify_compose_project=stack.project,
        docker_host=os.environ["DOCKER_HOST"],
        state_dir=tmp / "state",
        ollama_url=ollama.url,
    )
    try:
        stack.up(timeout=120)
        check_once(stack, ollama)  # warm the page cache and the engine's exec path
        checks = [check_once(stack, ollama) for _ in range(RUNS)]
        rounds = []
        for _ in range(ROUNDS):
            set_base(stack, f"{url}/v1/")
            t_down, t_wall, t_ids = targeted(stack, settings)
            set_base(stack, f"{url}/v1")
            s_down, s_wall, _ = seed_way(stack)
            rounds.append((t_down, t_wall, t_ids, s_down, s_wall))
    finally:
        stack.down()
    return Figures(
        check=statistics.median(c[0] for c in checks),
        codes=sorted({c[1] for c in checks}),
        targeted=statistics.median(r[0] for r in rounds),
        targeted_wall=statistics.median(r[1] for r in rounds),
        seed=statistics.median(r[3] for r in rounds),
        seed_wall=statistics.median(r[4] for r in rounds),
        kept=all(r[2]["db"] == "kept" and r[2]["redis"] == "kept" for r in rounds),
    )


def main() -> int:
    os.environ.setdefault("DOCKER_HOST", docker_host())
    if "DOCKER_CONFIG" not in os.environ and str(v2_plugin_dir()) not in SYSTEM_PLUGIN_DIRS:
        os.environ["DOCKER_CONFIG"] = str(v2_plugin_dir().parent)  # Compose v2, as users have
    results: dict[str, Figures] = {}
    with FakeOllama(bind="0.0.0.0") as ollama, tempfile.TemporaryDirectory() as tmp:
        for layout in LAYOUTS:
            name = " ".join(layout)
            r = results[name] = measure(layout, ollama, Path(tmp) / name.replace(" ", "-"))
            print(
                f"{name}: check {r.check:.2f} s (exit {r.codes}); api down: targeted "
                f"{r.targeted:.2f} s (command {r.targeted_wall:.2f} s) vs down && up -d "
                f"{r.seed:.2f} s (command {r.seed_wall:.2f} s); db, redis kept: {r.kept}",
                flush=True,
            )
    print()
    print(
        f"| layout | check (median of {RUNS}) | api down: restart | api down: down && up -d "
        "| ratio | db, redis kept |"
    )
    print("|---|---|---|---|---|---|")
    ok = True
    for name, r in results.items():
        ok &= r.check <= 1.0 and r.ratio <= 0.5 and r.kept
        print(
            f"| {name} | {r.check:.2f} s | {r.targeted:.2f} s | {r.seed:.2f} s "
            f"| {r.ratio:.2f}x | {'yes' if r.kept else 'NO'} |"
        )
    print("TARGETS MET" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
