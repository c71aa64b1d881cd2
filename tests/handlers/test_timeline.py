"""Where a check's time goes: spans across threads, and the critical path through them."""

from __future__ import annotations

import threading
import time
from typing import Any

from handlers import timeline
from handlers.parallel import parallel_map


def _spans(*rows: tuple[str, float, float, int | None, int | None]) -> list[dict[str, Any]]:
    return [
        {"name": n, "start_ms": s, "end_ms": e, "parent": p, "waits": w} for n, s, e, p, w in rows
    ]


def test_critical_path_follows_the_wait_and_the_chain_inside() -> None:
    spans = _spans(
        ("probe container.reach", 0, 300, None, None),  # 0
        ("wait dify_urls", 1, 200, 0, 2),  # 1: waited for span 2
        ("fact dify_urls", 0.5, 200, 5, None),  # 2: computed inside another probe
        ("exec psql @db", 20, 199, 2, None),  # 3
        ("exec curl @api", 201, 299, 0, None),  # 4
        ("probe dify.base_url", 0, 201, None, None),  # 5
        ("probe ollama.host", 0, 50, None, None),  # 6
    )
    names = [s["name"] for s in timeline.critical_path(spans)]
    assert names == [
        "probe container.reach",
        "wait dify_urls",
        "fact dify_urls",
        "exec psql @db",
        "exec curl @api",
    ]


def test_critical_path_of_nothing_is_empty() -> None:
    assert timeline.critical_path([]) == []


def test_spans_follow_work_into_threads_and_pools() -> None:
    spans = timeline.Timeline()
    with timeline.recording(spans), timeline.span("probe x"):

        def job(n: int) -> int:
            with timeline.span(f"exec {n}"):
                time.sleep(0.01)
            return n

        assert parallel_map(job, [1, 2, 3]) == [1, 2, 3]
        thread = threading.Thread(target=timeline.in_context(job), args=(4,))
        thread.start()
        thread.join()
    data = spans.to_json()
    assert data[0]["name"] == "probe x"
    assert sorted(s["name"] for s in data[1:]) == ["exec 1", "exec 2", "exec 3", "exec 4"]
    assert all(s["parent"] == 0 for s in data[1:])
    assert all(s["end_ms"] >= s["start_ms"] + 5 for s in data[1:])


def test_no_span_outside_a_check() -> None:
    with timeline.span("exec x") as index:
        assert index is None


def test_process_start_is_in_the_past() -> None:
    started = timeline.process_start()
    assert started is not None and 0 < time.monotonic() - started < 3600
