"""Prometheus metrics, off unless ``strongroom serve --metrics-port`` turns them on.

Every process of a server (the workers of ``--workers N`` included) writes its figures to
files in one directory (prometheus-client's multiprocess mode); the serving parent exposes
their sum on its own plain-HTTP listener, apart from the API's. Nothing here is a value, a
name of an object or a token: labels are operation names, statuses, vault names and
scheduler actions.

Code that records does ``if (t := telemetry.active) is not None: t.<metric>...``: with
metrics off that is one attribute read, and prometheus-client is not even imported.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Telemetry:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter(
            "strongroom_requests", "Data-plane requests answered, by operation, status and vault.",
            ["operation", "status", "vault"],
        )  # fmt: skip
        self.request_seconds = Histogram(
            "strongroom_request_seconds", "Time to answer a data-plane request, by operation.",
            ["operation"], buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.tokens = Counter("strongroom_tokens_issued", "Access tokens issued.")
        self.token_failures = Counter(
            "strongroom_token_failures", "Token requests refused, by OAuth error code.", ["error"]
        )
        self.commit_seconds = Histogram(
            "strongroom_store_commit_seconds", "Time from a write group's start to its commit.",
            buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.commit_group = Histogram(
            "strongroom_store_commit_group_size", "Transactions committed together.",
            buckets=_GROUP_BUCKETS,
        )  # fmt: skip
        self.scheduler_passes = Counter(
            "strongroom_scheduler_passes", "Scheduler passes run, by outcome.", ["outcome"]
        )
        self.scheduler_actions = Counter(
            "strongroom_scheduler_actions", "Objects the scheduler acted on.",
            ["action", "outcome"],
        )  # fmt: skip
        self.jobs = Counter(
            "strongroom_jobs", "Backup and restore jobs ended.",
            ["operation", "status"],
        )  # fmt: skip
        self.replication_lag = Gauge(
            "strongroom_replication_lag_changes",
            "Changes of the source a replica has not applied yet, at its last poll.",
            ["vault"], multiprocess_mode="max",
        )  # fmt: skip
        self.replication_applied = Counter(
            "strongroom_replication_applied", "Changes a replica applied, by vault.", ["vault"]
        )

    def request(self, operation: str, status: int, vault: str, seconds: float) -> None:
        self.requests.labels(operation, str(status), vault).inc()
        self.request_seconds.labels(operation).observe(seconds)

    def commit(self, seconds: float, group: int) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_group.observe(group)


active: Telemetry | None = None


def prepare(directory: Path) -> None:
    """Before any worker starts: an empty directory for every process's figures, named in the
    environment that the workers inherit."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def start() -> Telemetry:
    """This process records metrics (into the directory ``prepare`` named)."""
    global active
    from prometheus_client import values

    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    if active is None:
        active = Telemetry()
    return active


def registry() -> CollectorRegistry:
    """What the metrics listener serves: the sum over every process's files."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    found = CollectorRegistry()
    MultiProcessCollector(found)  # type: ignore[no-untyped-call]
    return found


def serve(address: str, port: int) -> Any:
    """The metrics listener (plain HTTP, in a thread of this process)."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=address, registry=registry())
