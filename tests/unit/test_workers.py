"""RSA private operations in worker processes: results, errors, lost workers, other loops."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from strongroom.crypto import keys as kc
from strongroom.crypto.pool import CpuPool
from strongroom.crypto.workers import WorkerLost, WorkerPool
from strongroom.errors import BadParameter, StrongroomError

MATERIAL = kc.generate("RSA", 2048, None, None)
PUBLIC = serialization.load_der_private_key(MATERIAL, None).public_key()  # type: ignore[union-attr]
DIGEST = bytes(range(32))


def _verify(signature: bytes) -> None:
    PUBLIC.verify(signature, DIGEST, padding.PKCS1v15(), Prehashed(hashes.SHA256()))  # type: ignore[union-attr,call-arg,arg-type]


def test_workers_sign_and_decrypt_many_at_once() -> None:
    async def main() -> tuple[list[bytes], bytes]:
        pool = WorkerPool(2)
        try:
            sigs = await asyncio.gather(
                *[pool.submit("sign", "RSA", MATERIAL, "RS256", DIGEST) for _ in range(40)]
            )
            secret = PUBLIC.encrypt(b"attack at dawn", padding.PKCS1v15())  # type: ignore[union-attr,call-arg]
            plain = await pool.submit(
                "decrypt", "RSA", MATERIAL, "RSA1_5", secret, None, None, None
            )
            return sigs, plain
        finally:
            pool.close()

    sigs, plain = asyncio.run(main())
    for sig in sigs:
        _verify(sig)
    assert plain == b"attack at dawn"


def test_domain_errors_come_back_with_their_class_and_message() -> None:
    async def main() -> None:
        pool = WorkerPool(1)
        try:
            with pytest.raises(BadParameter, match="cannot be decrypted"):
                await pool.submit(
                    "decrypt", "RSA", MATERIAL, "RSA-OAEP", bytes(256), None, None, None
                )
            with pytest.raises(BadParameter, match="32-byte digest"):
                await pool.submit("sign", "RSA", MATERIAL, "RS256", bytes(20))
            # Anything else is an internal error whose message holds none of the arguments.
            with pytest.raises(StrongroomError) as caught:
                await pool.submit("sign", "RSA", b"not a key at all", "RS256", DIGEST)
            assert type(caught.value) is StrongroomError
            assert caught.value.message == "The sign operation failed."
            # The worker survived all three.
            _verify(await pool.submit("sign", "RSA", MATERIAL, "RS256", DIGEST))
        finally:
            pool.close()

    asyncio.run(main())


def test_a_killed_worker_fails_its_requests_and_is_replaced() -> None:
    async def main() -> None:
        pool = WorkerPool(1)
        try:
            await pool.submit("sign", "RSA", MATERIAL, "RS256", DIGEST)
            (worker,) = pool._workers
            waiting = [pool.submit("sign", "RSA", MATERIAL, "RS256", DIGEST) for _ in range(200)]
            os.kill(worker.proc.pid, signal.SIGKILL)
            outcomes = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 60)
            lost = [o for o in outcomes if isinstance(o, WorkerLost)]
            assert lost, "200 signatures finished before the kill; the test proved nothing"
            assert all(isinstance(o, bytes | WorkerLost) for o in outcomes)
            assert lost[0].code == "InternalError"
            _verify(await pool.submit("sign", "RSA", MATERIAL, "RS256", DIGEST))
            assert pool._workers[0].proc.pid != worker.proc.pid
            assert worker.proc.poll() is not None  # reaped, not a zombie left behind
        finally:
            pool.close()

    asyncio.run(main())


def test_closing_the_pool_ends_its_workers() -> None:
    async def main() -> list[int]:
        pool = WorkerPool(2)
        await asyncio.gather(
            *[pool.submit("sign", "RSA", MATERIAL, "RS256", DIGEST) for _ in range(4)]
        )
        procs = [w.proc for w in pool._workers]
        pool.close()
        return [p.returncode for p in procs]

    assert asyncio.run(main()) == [0, 0]


def test_a_second_event_loop_is_served_by_threads() -> None:
    pool = CpuPool(1)
    try:
        first = asyncio.run(pool.private("sign", "RSA", MATERIAL, "RS256", DIGEST))
        # The workers answer on the first loop, which is gone; the pool must not use them.
        second = asyncio.run(pool.private("sign", "RSA", MATERIAL, "RS256", DIGEST))
    finally:
        pool.close()
    _verify(first)
    _verify(second)
