"""The history store on real SQLite files: records, reads, retention, and a damaged or locked
database that must never stop anything; the timeline and its PNG."""

from __future__ import annotations

import io
import json
import sqlite3
import time

import pytest

from cli.main import main
from handlers.history import CheckRow, FindingRow, History, open_history
from handlers.history_chart import render_png
from handlers.history_timeline import build_timeline, parse_since
from handlers.results import Finding, Report, Status
from handlers.watch import ActionDone


def report(bad: bool, latency: float = 15.0) -> Report:
    reach = Finding(
        "container.reach",
        Status.FAIL if bad else Status.OK,
        "refused" if bad else "answers",
        metrics={} if bad else {"plugin_daemon_ms": latency, "slowest_ms": latency + 3},
    )
    return Report((Finding("docker.engine", Status.OK, "ok"), reach), 420)


def fill(history: History, start: float, pattern: str, every: float = 60.0) -> None:
    """One check per character: '.' healthy, 'x' failing."""
    for i, char in enumerate(pattern):
        history.record_check(report(char == "x", 10 + i % 7), "watch:interval", start + i * every)


def test_records_read_back_and_survive_a_new_process(tmp_path):
    history = open_history(tmp_path, days=30)
    now = time.time()
    fill(history, now - 600, "..xx..")
    history.record_action("UOPS", "fix-env:apply", "applied", "abc", now - 400)
    history.record_alert("local-1", "opened", ["container.reach"], now - 450)
    history.close()
    again = open_history(tmp_path, days=30)  # as after a restart of the bot
    checks = again.checks_since(now - 3600)
    assert [c.status for c in checks] == [Status.OK, Status.OK, Status.FAIL, Status.FAIL] + [
        Status.OK
    ] * 2
    assert checks[0].latency_ms == 10.0 and checks[2].latency_ms is None
    assert checks[0].trigger == "watch:interval" and checks[0].duration_ms == 420
    assert [a.command for a in again.actions_between(now - 3600, now)] == ["fix-env:apply"]
    assert again.alerts_since(0)[0].findings == ("container.reach",)
    assert again.problem is None
    mode = (tmp_path / "history.sqlite3").stat().st_mode & 0o777
    assert mode == 0o600
    with sqlite3.connect(tmp_path / "history.sqlite3") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rows_older_than_history_days_are_pruned(tmp_path):
    history = open_history(tmp_path, days=1)
    now = time.time()
    history.record_check(report(False), "old", now - 3 * 86400)
    history.close()
    history = open_history(tmp_path, days=1)  # prunes on its first write
    history.record_check(report(False), "new", now)
    assert [c.trigger for c in history.checks_since(0)] == ["new"]


def test_a_garbage_file_is_reported_and_nothing_stops(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not a database\n" * 200)
    history = open_history(tmp_path, days=30)
    assert history.record_check(report(True), "watch:interval") is False
    assert history.checks_since(0) == [] and history.last_check() is None
    assert history.problem is not None and "unusable" in history.problem
    assert history.record_action("U1", "restart", "ok") is False  # still no exception
    assert path.read_bytes().startswith(b"this is not a database")  # never overwritten


def test_a_locked_database_is_skipped_then_used_again(tmp_path):
    history = open_history(tmp_path, days=30)
    assert history.record_check(report(False), "before", time.time())
    other = sqlite3.connect(tmp_path / "history.sqlite3", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    assert history.record_check(report(True), "during", time.time()) is False
    assert time.monotonic() - started < 3  # the busy timeout, not a hang
    assert history.problem is not None and "locked" in history.problem
    other.execute("ROLLBACK")
    other.close()
    fresh = open_history(tmp_path, days=30)  # a new reader sees what was written before
    assert [c.trigger for c in fresh.checks_since(0)] == ["before"]


def test_a_database_locked_at_open_degrades_too(tmp_path):
    path = tmp_path / "history.sqlite3"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE x (a)")
    other.execute("BEGIN EXCLUSIVE")
    try:
        history = open_history(tmp_path, days=30)
        assert history.record_check(report(False), "watch:interval") is False
        assert history.checks_since(0) == []
        assert "locked" in (history.problem or "")
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_timeline_incidents_with_actions():
    history_rows = [report(char == "x") for char in "..xxx...xx"]
    now = 10_000.0
    checks = [
        CheckRow(
            now + i * 60,
            "t",
            1,
            r.status,
            tuple(FindingRow(f.id, f.status, f.summary, f.metrics) for f in r.findings),
        )
        for i, r in enumerate(history_rows)
    ]
    fix = ActionDone(now + 200, "UOPS", "fix-env:apply", "applied")
    timeline = build_timeline(checks, [fix], now, now + 600)
    assert [(i.start, i.end) for i in timeline.incidents] == [
        (now + 120, now + 300),
        (now + 480, None),
    ]
    assert timeline.incidents[0].actions == (fix,) and timeline.incidents[1].actions == ()
    assert timeline.incidents[0].findings == ("container.reach",)


@pytest.mark.parametrize("bad", ["", "1", "24", "h", "0h", "99999d", "1y", "24h " * 20])
def test_parse_since_refuses_what_is_not_a_window(bad):
    with pytest.raises(ValueError):
        parse_since(bad)


def test_the_png_is_a_real_chart_and_a_failing_window_looks_different(tmp_path):
    from PIL import Image  # matplotlib's own dependency

    now = time.time()
    start = now - 3600
    healthy = open_history(tmp_path / "healthy", 30)
    failing = open_history(tmp_path / "failing", 30)
    fill(healthy, start, "." * 60)
    fill(failing, start, "...." + "x" * 40 + "." * 16)
    pictures = {}
    for name, history in (("healthy", healthy), ("failing", failing)):
        timeline = build_timeline(history.checks_since(start - 1), [], start, now)
        png = render_png(timeline)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
        pictures[name] = Image.open(io.BytesIO(png)).convert("RGB")
    a, b = pictures["healthy"], pictures["failing"]
    assert a.size == b.size == (900, 400)
    pa, pb = pixels(a), pixels(b)
    differing = sum(1 for p, q in zip(pa, pb, strict=True) if p != q)
    assert differing > 5_000  # the red band and the missing latency, not a few pixels
    red = (0xE0, 0x1E, 0x5A)
    assert pb.count(red) > 1_000 and red not in pa


def pixels(image) -> list[tuple[int, ...]]:
    raw = image.tobytes()
    return [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]


def test_cli_history_prints_json_and_writes_the_png(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STATE_DIR", str(tmp_path))
    monkeypatch.delenv("DIFY_OLLAMA_BOT_ENV", raising=False)
    history = open_history(tmp_path, 30)
    fill(history, time.time() - 1800, "..xx..")
    history.close()
    chart = tmp_path / "chart.png"
    assert main(["history", "--since", "2h", "--json", "--png", str(chart)]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["checks"] == 6 and len(data["incidents"]) == 1
    assert data["incidents"][0]["findings"] == ["container.reach"]
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert main(["history", "--since", "forever"]) == 2
    assert "--since" in capsys.readouterr().err
    assert main(["history", "--png", str(tmp_path / "no" / "such" / "x.png")]) == 2
