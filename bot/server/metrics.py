"""/metrics on its own port (METRICS_PORT), for Socket Mode: the bot has no HTTP server there.
prometheus-client's own threaded server, serving this bot's registry only."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import start_http_server

from handlers.metrics import CheckMetrics

log = logging.getLogger(__name__)

DEFAULT_PORT = 9464  # the port commonly used by exporters of this kind; METRICS_PORT overrides


def serve_metrics(metrics: CheckMetrics, host: str, port: int | None) -> Any:
    """Start serving in a daemon thread; returns the server (call `.shutdown()` to stop)."""
    server, _thread = start_http_server(port or DEFAULT_PORT, addr=host, registry=metrics.registry)
    log.info("metrics: http://%s:%s/metrics", host, port or DEFAULT_PORT)
    return server
