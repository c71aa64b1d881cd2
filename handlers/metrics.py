"""Prometheus metrics of the checks and alerts, in the Prometheus text format.

prometheus-client (why a dependency: the text format's escaping, histogram buckets and the
content type are its job, and its parser is what the tests read the output back with). Each
bot process has its own registry; nothing here is global.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from handlers.results import Report, Status

CONTENT_TYPE = CONTENT_TYPE_LATEST
STATUS_VALUE = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2, Status.SKIP: 3}
DURATION_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 15.0, 30.0)


class CheckMetrics:
    def __init__(self, host: str = "local") -> None:
        self.host = host
        self.registry = CollectorRegistry(auto_describe=True)
        self.finding = Gauge(
            "dify_ollama_finding_status",
            "Status of each check finding: 0 ok, 1 warn, 2 fail, 3 skip",
            ["host", "finding"],
            registry=self.registry,
        )
        self.latency = Gauge(
            "dify_ollama_probe_latency_seconds",
            "Latency a probe measured at the last check (e.g. Ollama reach from plugin_daemon)",
            ["host", "finding", "probe"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "dify_ollama_check_duration_seconds",
            "Duration of a whole check run",
            ["host"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.checks = Counter(
            "dify_ollama_checks",
            "Check runs, by what triggered them",
            ["host", "trigger"],
            registry=self.registry,
        )
        self.alerts_open = Gauge(
            "dify_ollama_alerts_open",
            "Findings in the open alert of the watch (0: no open alert)",
            ["host"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "dify_ollama_last_successful_check_timestamp_seconds",
            "Unix time when the last check run completed",
            ["host"],
            registry=self.registry,
        )
        self.alerts_open.labels(host).set(0)

    def observe(self, report: Report, trigger: str, at: float | None = None) -> None:
        for finding in report.findings:
            self.finding.labels(self.host, finding.id).set(STATUS_VALUE[finding.status])
            for key, value in finding.metrics.items():
                if key.endswith("_ms"):
                    probe = key.removesuffix("_ms")
                    self.latency.labels(self.host, finding.id, probe).set(value / 1000.0)
        self.duration.labels(self.host).observe(report.duration_ms / 1000.0)
        # The trigger's kind only ("watch", "slack", ...): a label per event would grow forever.
        self.checks.labels(self.host, trigger.split(":", 1)[0][:20]).inc()
        self.last_success.labels(self.host).set(time.time() if at is None else at)

    def set_alerts_open(self, count: int) -> None:
        self.alerts_open.labels(self.host).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
