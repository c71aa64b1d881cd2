"""Benchmark: "the environment each service gets", our resolver against asking Compose.

For every vendored Dify release (tests/data/dify-*; 1.15.0 twice: `.env` only, and with every
optional envs/*.env present), laid out as upstream's docker/ folder with `.env` copied from
.env.example, in one run:
  * ours: handlers.compose_file (read `.env`, parse the compose file, every service's
    environment), in-process, median of --runs-ours runs; plus a cold first call;
  * `docker compose config --format json` (v2.40.3, the CLI plugin), median of --runs;
  * the v2 binary run directly (`docker-compose config --format json`), median of --runs;
  * `docker-compose config` (v1.29.2) where v1 accepts the file, median of --runs.
Every row also checks that the answers agree (every service's environment, key for key).
No engine is needed (`config` never calls it).

Run: scripts/install-test-deps; .venv/bin/python bench/bench_compose_env.py [--runs 5]
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handlers.compose_file import load_compose, read_project_environment  # noqa: E402
from tests.rig.compose import compose_for  # noqa: E402
from tests.rig.compose_oracle import (  # noqa: E402
    ComposeRefused,
    config_environments,
    copy_release,
    oracle_env,
)
from tests.rig.stack import optional_env_files  # noqa: E402

CASES = [
    ("0.10.2", False),
    ("1.9.1", False),
    ("1.13.3", False),
    ("1.15.0", False),
    ("1.15.0", True),
]


def timed(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def ours(folder: Path, flavour: str = "v2") -> dict[str, dict[str, str]]:
    env = read_project_environment(folder / ".env", oracle_env(), flavour=flavour)
    config = load_compose((folder / "docker-compose.yaml",), env)
    services = config.services if flavour == "v2" else {**config.services, **config.inactive}
    return {name: svc.environment for name, svc in services.items()}


def run_compose(flavour: str, folder: Path) -> None:
    cmd = compose_for(flavour)
    args = ["config", "--format", "json"] if flavour != "v1" else ["config"]
    proc = cmd.run(args, cwd=folder, env=oracle_env(), timeout=120)
    if proc.returncode != 0:
        raise ComposeRefused(proc.stderr.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs of each Compose command")
    ap.add_argument("--runs-ours", type=int, default=50, help="runs of our resolver")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for release, envs in CASES:
            label = f"{release}{' +envs' if envs else ''}"
            folder = copy_release(release, Path(tmp) / label.replace(" ", "") / "docker")
            shutil.copy2(folder / ".env.example", folder / ".env")
            if envs:
                for name in optional_env_files(release):
                    shutil.copy2(folder / "envs" / f"{name}.example", folder / "envs" / name)
            t0 = time.perf_counter()
            mine = ours(folder)
            cold = time.perf_counter() - t0
            ours_med, _ = timed(functools.partial(ours, folder), args.runs_ours)
            agree = mine == config_environments("v2", folder)
            v2_plugin, _ = timed(functools.partial(run_compose, "v2", folder), args.runs)
            v2_bin, _ = timed(functools.partial(run_compose, "v2-standalone", folder), args.runs)
            try:
                v1, _ = timed(functools.partial(run_compose, "v1", folder), args.runs)
                v1_agree = ours(folder, "v1") == config_environments("v1", folder)
                v1_text = f"{v1 * 1000:8.0f} ms" + ("" if v1_agree else " (DISAGREES)")
            except ComposeRefused as e:
                v1_text = f"refused ({str(e)[:40]})"
            services = len(mine)
            keys = sum(len(v) for v in mine.values())
            rows.append(
                f"| {label:<13} | {services:>3} svc, {keys:>5} keys | {ours_med * 1000:6.1f} ms "
                f"(cold {cold * 1000:5.1f}) | {v2_plugin * 1000:6.0f} ms | {v2_bin * 1000:6.0f} ms"
                f" | {v2_plugin / ours_med:5.0f}x | {'yes' if agree else 'NO'} | {v1_text} |"
            )
            print(rows[-1], flush=True)
    print()
    print(
        "| release | project | ours (median) | v2 `docker compose config` | v2 binary "
        "| v2/ours | agree | v1 `docker-compose config` |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
