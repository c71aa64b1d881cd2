"""The history's picture: Ollama reach latency from plugin_daemon over the window, and under it
a band coloured by each check's verdict. matplotlib (Agg, no display) is imported here only,
when a chart is asked for: it costs ~0.5 s and ~30 MB, which `serve` and `check` never pay."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from handlers.history_timeline import Timeline
from handlers.results import HandlerError, Status

COLOURS = {
    Status.OK: "#2eb67d",
    Status.WARN: "#ecb22e",
    Status.FAIL: "#e01e5a",
    Status.SKIP: "#9e9e9e",
}
NO_DATA = "#eeeeee"
MISSING = (
    "the history chart needs matplotlib, which is not installed: "
    "`pip install 'dify-ollama-bot[chart]'` (or `pip install matplotlib`)"
)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise HandlerError(MISSING) from None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def render_png(timeline: Timeline, width: float = 9.0, height: float = 4.0) -> bytes:
    """The chart as PNG bytes; HandlerError when matplotlib is missing."""
    pyplot = _pyplot()
    from matplotlib import dates

    def when(at: float) -> datetime:
        return datetime.fromtimestamp(at, UTC)

    figure, (top, band) = pyplot.subplots(
        2, 1, figsize=(width, height), dpi=100, sharex=True, height_ratios=(4, 1)
    )
    try:
        points = [(when(at), ms) for at, ms in timeline.latency if ms is not None]
        if points:
            top.plot([p[0] for p in points], [p[1] for p in points], color="#1264a3", lw=1.5)
            top.scatter([p[0] for p in points], [p[1] for p in points], color="#1264a3", s=6)
        gaps = [when(at) for at, ms in timeline.latency if ms is None]
        if gaps:  # no answer from Ollama: marked on the axis, not drawn as zero
            top.scatter(gaps, [0] * len(gaps), color=COLOURS[Status.FAIL], marker="x", s=18)
        top.set_ylabel("reach latency (ms)")
        top.set_ylim(bottom=0)
        top.set_title("Ollama reach latency from plugin_daemon, and check status", fontsize=10)
        top.grid(True, alpha=0.3)

        start, end = when(timeline.since), when(timeline.now)
        band.axvspan(start, end, color=NO_DATA)
        checks = list(timeline.band)
        for index, (at, status) in enumerate(checks):
            right = checks[index + 1][0] if index + 1 < len(checks) else timeline.now
            band.axvspan(when(at), when(right), color=COLOURS[status], lw=0)
        band.set_yticks([])
        band.set_ylabel("status", rotation=0, ha="right", va="center")
        band.set_xlim(start, end)
        band.xaxis.set_major_formatter(dates.DateFormatter("%m-%d %H:%M", tz=UTC))  # type: ignore[no-untyped-call]
        figure.autofmt_xdate()
        out = io.BytesIO()
        figure.savefig(out, format="png")
        return out.getvalue()
    finally:
        pyplot.close(figure)
