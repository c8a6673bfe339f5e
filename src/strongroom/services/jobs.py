"""Long-running operations of a vault (whole-vault backup and restore), as Managed HSM runs
them: one request starts a job, later requests read its status by id.

A job's record lives in the store (``vault/{vault_id}/jobs/{id}``), so every worker and every
server of a shared database answers for it; the job itself runs in the process that started
it, which writes a heartbeat into the record every ``HEARTBEAT`` seconds. A job whose process
died (a crash, a restart, ``kill -9``) stops beating: once its heartbeat is ``stale_seconds``
old it reads as Failed, saying it was interrupted, and is not resumed: a half-written backup
folder has no manifest, so nothing mistakes it for a backup, and a restore is repeatable
(objects already restored count as done), so the user runs it again. A server that stops
cleanly marks its running jobs Failed the same way before it exits.

A job reports InProgress for at least ``MIN_RUNNING`` seconds: the Azure SDK's poller, resumed
from a continuation token, fails on a job that had already finished when it resumed
(azure-keyvault-administration 4.7), and Managed HSM's jobs never finish that fast anyway.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from strongroom import telemetry
from strongroom.errors import NotFound, StoreUnavailable, StrongroomError
from strongroom.services.installation import Installation
from strongroom.store.base import VaultRecord

log = logging.getLogger(__name__)

IN_PROGRESS, SUCCEEDED, FAILED = "InProgress", "Succeeded", "Failed"


@dataclass(slots=True)
class Job:
    id: str
    vault_id: str
    family: str  # "backup" or "restore": the path it is read under
    operation: str  # "backup", "prebackup", "restore", "prerestore", "selectiveRestore"
    status: str
    start: int
    heartbeat: int
    end: int | None = None
    error: dict[str, Any] | None = None  # {code, message[, innererror]}
    details: str | None = None
    folder_url: str | None = None
    done: int = 0
    total: int = 0

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**json.loads(text))


@dataclass(frozen=True, slots=True)
class Outcome:
    folder_url: str | None = None
    details: str | None = None


class JobProgress:
    """What a running job tells of its progress; saved with the next heartbeat."""

    def __init__(self, job: Job):
        self._job = job

    def __call__(self, phase: str, done: int, total: int) -> None:
        self._job.done, self._job.total = done, total


Work = Callable[[JobProgress], Awaitable[Outcome]]


def job_error(exc: BaseException) -> dict[str, Any]:
    if not isinstance(exc, StrongroomError):
        log.error("job failed unexpectedly", exc_info=exc)
        exc = StrongroomError("The job failed unexpectedly; the server logged why.")
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.inner:
        error["innererror"] = {"code": exc.inner}
    return error


class Jobs:
    HEARTBEAT = 2.0
    MIN_RUNNING = 2.0

    def __init__(self, inst: Installation, stale_seconds: float = 30.0):
        self._inst = inst
        self._store = inst.store
        self._stale = stale_seconds
        self._running: dict[str, asyncio.Task[None]] = {}

    @staticmethod
    def _key(vault_id: str, job_id: str) -> str:
        return f"vault/{vault_id}/jobs/{job_id}"

    async def _save(self, job: Job) -> None:
        text = json.dumps(asdict(job))
        key = self._key(job.vault_id, job.id)
        await self._store.transact_async(lambda tx: tx.set_meta(key, text))

    async def start(self, vault: VaultRecord, family: str, operation: str, work: Work) -> Job:
        now = self._inst.clock.now()
        job = Job(uuid.uuid4().hex, vault.id, family, operation, IN_PROGRESS, now, now)
        await self._save(job)
        # A context of its own: the job's writes are not the starting request's.
        task = asyncio.create_task(self._run(job, work), context=contextvars.Context())
        self._running[job.id] = task
        task.add_done_callback(lambda _: self._running.pop(job.id, None))
        return job

    async def _run(self, job: Job, work: Work) -> None:
        started = time.monotonic()
        beat = asyncio.create_task(self._beat(job))
        try:
            outcome = await work(JobProgress(job))
            job.status, job.folder_url, job.details = SUCCEEDED, outcome.folder_url, outcome.details
        except asyncio.CancelledError:
            job.status = FAILED
            job.error = {
                "code": "JobInterrupted",
                "message": "The server stopped while the job ran; start it again.",
            }
            job.details = job.error["message"]
        except Exception as exc:  # the job's failure is its status, never the server's
            job.status, job.error = FAILED, job_error(exc)
            job.details = job.error["message"]
        finally:
            beat.cancel()
        if job.status != FAILED or job.error is None or job.error["code"] != "JobInterrupted":
            await asyncio.sleep(max(0.0, self.MIN_RUNNING - (time.monotonic() - started)))
        job.end = self._inst.clock.now()
        if (t := telemetry.active) is not None:
            t.jobs.labels(job.operation, job.status).inc()
        try:
            await self._save(job)
        except StoreUnavailable as exc:
            log.warning("the final status of job %s could not be saved: %s", job.id, exc.message)
        except Exception:
            log.exception("the final status of job %s could not be saved", job.id)

    async def _beat(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.HEARTBEAT)
            job.heartbeat = self._inst.clock.now()
            try:
                await self._save(job)
            except StoreUnavailable as exc:
                log.warning("the heartbeat of job %s could not be saved: %s", job.id, exc.message)
            except Exception:
                log.exception("the heartbeat of job %s could not be saved", job.id)

    def of_vault(self, vault: VaultRecord) -> list[Job]:
        """The vault's jobs, newest first, each with its status as ``get`` tells it."""
        rows = self._store.reads.list_meta(f"vault/{vault.id}/jobs/")
        jobs = [Job.from_json(text) for _, text in rows]
        jobs = [self.get(vault, job.family, job.id) for job in jobs]
        return sorted(jobs, key=lambda job: job.start, reverse=True)

    def get(self, vault: VaultRecord, family: str, job_id: str) -> Job:
        text = self._store.reads.get_meta(self._key(vault.id, job_id))
        if text is None:
            raise NotFound(f"No {family} job {job_id[:40]} in this vault.", code="JobNotFound")
        job = Job.from_json(text)
        if job.family != family:
            raise NotFound(f"No {family} job {job_id[:40]} in this vault.", code="JobNotFound")
        age = self._inst.clock.now() - job.heartbeat
        if job.status == IN_PROGRESS and job.id not in self._running and age > self._stale:
            job.status, job.end = FAILED, job.heartbeat
            job.error = {
                "code": "JobInterrupted",
                "message": f"The job was interrupted: the server running it stopped (no sign of "
                f"it for {age} seconds). Nothing was lost; start it again.",
            }
            job.details = job.error["message"]
        return job

    async def close(self) -> None:
        """Stops the running jobs, each saved as Failed (interrupted)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
