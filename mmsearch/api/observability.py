"""What operators watch: Prometheus metrics at /metrics and one structured log line per request.

Every request gets an id (the client's X-Request-ID when it sends a sane one, else a new
one), echoed in the response header and attached to every log record written while the
request runs, so a slow search or a failed job can be traced through the logs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("mmsearch.access")
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and any extra fields."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        out |= {k: v for k, v in vars(record).items() if k not in self._STANDARD}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Structured logs on stderr for `mmsearch serve`."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class LibraryCollector:
    """Read at scrape time: index sizes per vector kind, media counts, index jobs."""

    def __init__(self, library):
        self.library = library

    def collect(self):
        sizes = GaugeMetricFamily(
            "mmsearch_index_vectors", "Vectors in the FAISS indexes, per vector kind.", labels=["kind"]
        )
        for kind, n in self.library.index_sizes().items():
            sizes.add_metric([kind], n)
        yield sizes
        media = GaugeMetricFamily("mmsearch_media", "Media rows in the library.", labels=["kind", "generated"])
        jobs = GaugeMetricFamily("mmsearch_jobs", "Index jobs by state.", labels=["state"])
        progress = GaugeMetricFamily(
            "mmsearch_job_progress", "Share of files done (0-1) of pending and running jobs.", labels=["job_id"]
        )
        counts = self.library.counts()
        for kind, generated, n in counts["media"]:
            media.add_metric([kind, str(generated).lower()], n)
        for state, n in counts["jobs"]:
            jobs.add_metric([state], n)
        for job_id, done in counts["job_progress"]:
            progress.add_metric([str(job_id)], done)
        yield media
        yield jobs
        yield progress


class Metrics:
    """The app's own registry (several apps in one process keep separate counts)."""

    def __init__(self, library):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mmsearch_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "mmsearch_http_request_duration_seconds",
            "Time to answer, per route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.generated = Counter(
            "mmsearch_generated_images", "Images generated, by endpoint.", ["endpoint"], registry=self.registry
        )
        self.generation_requests = Counter(
            "mmsearch_generation_requests",
            "Requests that generated images, by endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        self.registry.register(LibraryCollector(library))

    def count_generation(self, endpoint: str, images: int) -> None:
        if images:
            self.generation_requests.labels(endpoint).inc()
            self.generated.labels(endpoint).inc(images)


def add_request_tracking(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def track(request: Request, call_next):
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-ID"] = rid
            return response
        finally:
            elapsed = time.perf_counter() - t0
            route = (
                getattr(request.scope.get("route"), "path", None) or "unmatched"
            )  # the template: bounded label values
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(request.method, route).observe(elapsed)
            log.info(
                "request",
                extra={
                    "request_id": rid,
                    "method": request.method,
                    "route": route,
                    "path": request.url.path,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)
