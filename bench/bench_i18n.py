"""Benchmark: what the Chinese interface costs against English, in the same run.

  * compiling the zh-CN catalog from its .po (config/po.py + gettext), once per process;
  * `dify-ollama --lang LANG --help` as a fresh process (what a user waits for), median;
  * rendering a 20-finding check report as text (the CLI) and as Block Kit (Slack), per call.
English is the baseline (no catalog: the text in the code). Target: Chinese within 1.1x of
English for the process, and the catalog under 50 ms.

Run: .venv/bin/python bench/bench_i18n.py [--runs 7] [--json]
No engine, no network.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.render.check import render_report  # noqa: E402
from config import i18n, po  # noqa: E402
from handlers.report_text import render_text  # noqa: E402
from handlers.results import Finding, Report, Status  # noqa: E402


def catalog_ms(runs: int) -> float:
    times = []
    for _ in range(runs):
        i18n.translations.cache_clear()
        start = time.perf_counter()
        i18n.translations("zh-CN")
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def help_seconds(lang: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "cli.main", "--lang", lang, "--help"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report() -> Report:
    from handlers.probes.ollama import ollama_host_remedy

    findings = [
        Finding(
            f"probe.n{i}",
            Status.FAIL if i % 4 == 0 else Status.OK,
            i18n.gettext("Ollama does not answer at {url}: {error}").format(
                url="http://127.0.0.1:11434", error="connection refused"
            ),
            detail="GET http://127.0.0.1:11434/api/version failed: connection refused",
            remedy=ollama_host_remedy(),
            service="api",
        )
        for i in range(20)
    ]
    return Report(tuple(findings), 780, context={"host": "gpu-01"})


def render_us(lang: str, runs: int) -> tuple[float, float]:
    with i18n.language(lang):
        sample = report()
        text, blocks = [], []
        for _ in range(runs):
            start = time.perf_counter()
            for _ in range(20):
                render_text(sample, width=80)
            text.append((time.perf_counter() - start) / 20)
            start = time.perf_counter()
            for _ in range(20):
                render_report(sample)
            blocks.append((time.perf_counter() - start) / 20)
    return 1e6 * statistics.median(text), 1e6 * statistics.median(blocks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    entries = len([e for e in po.read(i18n.catalog_path("zh-CN")) if e.msgid])
    compile_ms = round(catalog_ms(args.runs), 2)
    help_s = {lang: round(help_seconds(lang, args.runs), 3) for lang in ("en", "zh-CN")}
    text_us: dict[str, int] = {}
    blocks_us: dict[str, int] = {}
    for lang in ("en", "zh-CN"):
        text_us[lang], blocks_us[lang] = (round(t) for t in render_us(lang, args.runs))
    figures = {
        "catalog_entries": entries,
        "catalog_compile_ms": compile_ms,
        "help_s": help_s,
        "render_text_us": text_us,
        "render_blocks_us": blocks_us,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"zh-CN catalog: {entries} messages, compiled in {compile_ms} ms")
    print(
        f"--help, fresh process, median of {args.runs}: en {help_s['en']} s, "
        f"zh-CN {help_s['zh-CN']} s ({help_s['zh-CN'] / help_s['en']:.2f}x)"
    )
    for per_lang, name in ((text_us, "report as text"), (blocks_us, "Block Kit")):
        en, zh = per_lang["en"], per_lang["zh-CN"]
        print(f"{name}, 20 findings: en {en} us, zh-CN {zh} us ({zh / en:.2f}x)")


if __name__ == "__main__":
    main()
