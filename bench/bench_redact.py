"""Benchmark: the redactor on pathological inputs, in ms per MB, against two baselines.

Anyone who can type into Dify (a chat prompt) writes into its logs, and `logs` redacts every
line before it leaves the host: a regular expression that backtracks on some text freezes the
bot (the regex engine holds the GIL). Each case below is about 1 MB of text built to hurt one
part of the redactor (repeated key words, long tokens, deep quotes, many `=`/`:`, base64, PEM
fragments, one 1 MB line, 1 MB of short lines), plus an ordinary Dify log for reference.

Redactor: the one a stock install gets (Dify 1.13.3's `.env.example` as `.env` and as the
container's environment, plus three canary secrets), as `logs` builds it.
Figures per case, the best of --runs runs (wall time; the CPU time of that run beside it):
  * ours: `Redactor.redact(text)` (the whole text at once, as check findings and uploads) and
    `redact_lines` (line by line, the `logs` path);
  * baseline "v1": the redactor before the speed work (bench/baseline_redact_v1.py: every
    pass a regular expression over the whole text, one run per line), both ways; its output
    must equal ours byte for byte (checked here on every case, and by
    tests/adversarial/test_fuzz_redact_equivalence.py);
  * baseline "v0": the redactor before the linear-time rewrite (bench/baseline_redact_v0.py),
    run on growing prefixes of the case until one run takes over --v0-budget seconds: its
    ms/MB at the largest size it finished, and how that grew with size (quadratic cases grow);
  * baseline "replace": a loop of `str.replace` over the same literal secrets (longest first):
    the floor any literal-only redaction costs, which sees none of the shapes or keys.
Target: < 50 ms per MB for every case. Every output is checked to hold none of the canaries.

Run: .venv/bin/python bench/bench_redact.py [--runs 3] [--v0-budget 2.0] [--json]
No engine, no network.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import baseline_redact_v0 as v0  # noqa: E402
from bench import baseline_redact_v1 as v1  # noqa: E402
from handlers.envfile import read_env_file  # noqa: E402
from handlers.redact import MAX_LINE, Redactor, secret_values  # noqa: E402

MB = 1_000_000
TARGET_MS_PER_MB = 50.0
EXAMPLE = ROOT / "tests" / "data" / "dify-1.13.3" / ".env.example"
CANARIES = {
    "DB_PASSWORD": "canary-db-Zq81xT0pW",
    "SSH_KEY_PASSPHRASE": "canary pass phrase 7781",
    "NGROK_AUTHTOKEN": "canaryNgrokTok3n55213",
}


def _fill(unit: str, size: int = MB, line: int | None = None) -> str:
    """`unit` repeated to `size` characters; cut into lines of `line` characters if given."""
    text = (unit * (size // len(unit) + 1))[:size]
    if line is None:
        return text
    return "\n".join(text[i : i + line] for i in range(0, len(text), line))


def _dify_log(rng: random.Random, lines: int) -> str:
    secret = CANARIES["DB_PASSWORD"]
    out = []
    for i in range(lines):
        if i % 50 == 0:
            out.append(
                f"2025-11-26 07:14:05,123 ERROR connect failed: postgresql://postgres:{secret}"
                f"@db:5432/dify attempt={i} Authorization: Bearer abcdefgh{i}"
            )
        else:
            out.append(
                f"2025-11-26 07:14:05,123 INFO [app.py:{i % 999}] GET /console/api/workspaces/"
                f"current/models 200 {i % 5000} ms user={rng.getrandbits(32):08x} tenant=t{i}"
            )
    return "\n".join(out)


def cases() -> dict[str, str]:
    """About 1 MB each. Lines of 60 000 characters unless the case is about line length (a
    longer line is cut to MAX_LINE before redaction, which would hide the passes' own cost)."""
    rng = random.Random(11)
    b64 = base64.b64encode(rng.randbytes(760_000)).decode()
    line = 60_000
    assert line < MAX_LINE
    return {
        "ordinary Dify log (reference)": _dify_log(rng, 9_000),
        "repeated key word: keykeykey": _fill("key", line=line),
        "repeated key words: key_key_key_": _fill("key_", line=line),
        "repeated key words: PASSWORDPASSWORD": _fill("PASSWORD", line=line),
        "secret-key pairs: password=hunter2 ": _fill("password=hunter2 ", line=line),
        'secret-key pairs: "api_key": "x1",': _fill('"api_key": "x1y2",', line=line),
        "long token: one letter": _fill("A", line=line),
        "long token: sk-AAAA...": _fill("sk-" + "A" * 59_997, line=line),
        "long tokens: eyJ-eyJ-eyJ-": _fill("eyJ-", line=line),
        "long tokens: xoxb- repeated": _fill("xoxb-", line=line),
        'deep quotes: key="\\"\\"\\"': 'key="' + _fill('\\"', line=line),
        'deep quotes: key="key="key="': _fill('key="', line=line),
        "deep quotes: key='key='key='": _fill("key='", line=line),
        "deep quotes: nested JSON": _fill('{"token": "', line=line),
        "many = and :": _fill("=:", line=line),
        "many =: after keys: token:=token:=": _fill("token:=", line=line),
        "many = in a value: secret=a=b=c=": "secret=" + _fill("a=", line=line),
        "URL shapes: ://a:b ://a:b": _fill("://a:b", line=line),
        "URL credentials: http://u:p@h ": _fill("http://u:p@h ", line=line),
        "headers: Authorization: Bearer ": _fill("Authorization: Bearer ", line=line),
        "long base64 (one 76-column block)": "\n".join(b64[i : i + 76] for i in range(0, MB, 76)),
        "long base64 (60 000-character lines)": "\n".join(
            b64[i : i + line] for i in range(0, MB, line)
        ),
        "PEM fragments: BEGIN without END": _fill("-----BEGIN RSA PRIVATE KEY-----\n"),
        "PEM fragments: -----BEGIN -----BEGIN": _fill("-----BEGIN ", line=line),
        "PEM blocks with END": _fill(
            "-----BEGIN PRIVATE KEY-----\n" + "\n".join([b64[:64]] * 25) + "\n"
            "-----END PRIVATE KEY-----\nlog line after the key\n"
        ),
        "one 1 MB line (cut to MAX_LINE first)": _fill("GET /console/api/apps 200 12 ms "),
        "1 MB of 1-character lines": _fill("a\n"),
        "1 MB of short log lines": _fill("INFO worker ready pid=42\n"),
        "random printable ASCII": "".join(rng.choices(string.printable, k=MB)),
    }


T = TypeVar("T")


@dataclass
class Row:
    case: str
    mb: float
    whole_ms_per_mb: float
    whole_cpu_ms_per_mb: float
    lines_ms_per_mb: float
    lines_cpu_ms_per_mb: float
    v1_whole_ms_per_mb: float
    v1_lines_ms_per_mb: float
    same_as_v1: bool
    replace_ms_per_mb: float
    v0: dict[str, Any]
    leaked: list[str]


def _best(fn: Callable[[], T], runs: int) -> tuple[float, float, T]:
    """(best wall seconds, CPU seconds of that run, last result), after one warm-up run."""
    best = (float("inf"), 0.0)
    result = fn()
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best = min(best, (wall, cpu))
    return best[0], best[1], result


def _v0(redactor: Any, text: str, budget: float) -> dict[str, Any]:
    """The old redactor on growing prefixes until a run exceeds `budget` seconds."""
    size = 4096
    seen = []
    while True:
        prefix = text[:size]
        started = time.perf_counter()
        redactor.redact(prefix)
        elapsed = time.perf_counter() - started
        seen.append((len(prefix), elapsed))
        if elapsed > budget or len(prefix) >= len(text):
            break
        size *= 4
    chars, elapsed = seen[-1]
    first_chars, first_elapsed = seen[0]
    growth = (elapsed / chars) / (first_elapsed / first_chars) if first_elapsed > 0 else 0.0
    return {
        "chars": chars,
        "seconds": elapsed,
        "ms_per_mb": 1000 * elapsed / (chars / MB),
        "per_char_growth": growth,
        "complete": chars >= len(text),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--v0-budget", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    env = read_env_file(EXAMPLE).values | CANARIES
    container_env = [f"{k}={v}" for k, v in env.items()]
    ours = Redactor.from_sources(env, container_env, env_path=EXAMPLE.parent / ".env")
    old = v0.Redactor.from_sources(env, container_env)
    previous = v1.Redactor.from_sources(env, container_env, env_path=EXAMPLE.parent / ".env")
    literals = sorted(secret_values(env, env_path=EXAMPLE.parent / ".env"), key=len, reverse=True)

    def replace_loop(text: str) -> str:
        for value in literals:
            text = text.replace(value, "[REDACTED]")
        return text

    rows: list[Row] = []
    for name, text in cases().items():
        size = len(text.encode("utf-8", "surrogatepass")) / MB
        planted = text + "\n" + " ".join(CANARIES.values())
        lines = planted.split("\n")

        def whole(t: str = planted) -> str:
            return ours.redact(t)

        def by_line(ls: list[str] = lines) -> list[str]:
            return [line for line, _ in ours.redact_lines(ls)]

        def replaced(t: str = planted) -> str:
            return replace_loop(t)

        def v1_whole(t: str = planted) -> str:
            return previous.redact(t)

        def v1_by_line(ls: list[str] = lines) -> list[str]:
            return [line for line, _ in previous.redact_lines(ls)]

        whole_wall, whole_cpu, out = _best(whole, args.runs)
        lines_wall, lines_cpu, out_lines = _best(by_line, args.runs)
        v1_whole_wall, _, v1_out = _best(v1_whole, args.runs)
        v1_lines_wall, _, v1_out_lines = _best(v1_by_line, args.runs)
        leaked = [c for c in CANARIES.values() if c in out or any(c in x for x in out_lines)]
        replace_wall, _, _ = _best(replaced, args.runs)
        row = Row(
            case=name,
            mb=round(size, 3),
            whole_ms_per_mb=1000 * whole_wall / size,
            whole_cpu_ms_per_mb=1000 * whole_cpu / size,
            lines_ms_per_mb=1000 * lines_wall / size,
            lines_cpu_ms_per_mb=1000 * lines_cpu / size,
            v1_whole_ms_per_mb=1000 * v1_whole_wall / size,
            v1_lines_ms_per_mb=1000 * v1_lines_wall / size,
            same_as_v1=out == v1_out and out_lines == v1_out_lines,
            replace_ms_per_mb=1000 * replace_wall / size,
            v0=_v0(old, text, args.v0_budget),
            leaked=leaked,
        )
        rows.append(row)
        if not args.json:
            old_row = row.v0
            old_text = (
                f"{old_row['ms_per_mb']:9.0f}"
                + ("" if old_row["complete"] else f" @{old_row['chars'] // 1000} kB")
                + (f" x{old_row['per_char_growth']:.0f}" if old_row["per_char_growth"] > 3 else "")
            )
            print(
                f"{name[:40]:40} {row.whole_ms_per_mb:6.1f} {row.lines_ms_per_mb:6.1f} "
                f"{row.v1_whole_ms_per_mb:6.1f} {row.v1_lines_ms_per_mb:6.1f} "
                f"{row.replace_ms_per_mb:6.1f} {old_text}"
                + ("" if row.same_as_v1 else "  DIFFERS FROM v1")
                + ("  LEAK " + ",".join(leaked) if leaked else ""),
                flush=True,
            )
    worst = max(rows, key=lambda r: max(r.whole_ms_per_mb, r.lines_ms_per_mb))
    worst_ms = max(worst.whole_ms_per_mb, worst.lines_ms_per_mb)
    over_target = [
        r.case for r in rows if max(r.whole_ms_per_mb, r.lines_ms_per_mb) >= TARGET_MS_PER_MB
    ]
    summary = {
        "literals": len(literals),
        "cases": len(rows),
        "worst_case": worst.case,
        "worst_ms_per_mb": round(worst_ms, 1),
        "target_ms_per_mb": TARGET_MS_PER_MB,
        "over_target": over_target,
        "same_as_v1": all(r.same_as_v1 for r in rows),
        "pass": worst_ms < TARGET_MS_PER_MB and not any(r.leaked for r in rows),
    }
    if args.json:
        print(json.dumps({"rows": [asdict(r) for r in rows], "summary": summary}, indent=2))
    else:
        print(
            f"\ncolumns: ms/MB of ours (whole text), ours (line by line), v1 (whole), v1 (line "
            f"by line), str.replace over {len(literals)} literals, v0 (@ largest prefix it "
            f"finished within {args.v0_budget:g} s; xN = how much its cost per character grew "
            f"from 4 kB)"
        )
        print(
            f"output identical to v1 on every case: {'yes' if summary['same_as_v1'] else 'NO'}; "
            f"{len(over_target)} of {len(rows)} cases at or over the target: "
            + "; ".join(over_target)
        )
        print(
            f"worst: {summary['worst_ms_per_mb']} ms/MB ({summary['worst_case']}); target < "
            f"{TARGET_MS_PER_MB:g}: {'PASS' if summary['pass'] else 'FAIL'}"
        )
    return 0 if summary["pass"] and summary["same_as_v1"] else 1


if __name__ == "__main__":
    sys.exit(main())
