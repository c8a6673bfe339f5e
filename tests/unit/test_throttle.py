"""Throttling of failed client authentication, with a clock the test moves."""

from __future__ import annotations

from strongroom.services.throttle import FailureThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_per_refill_period() -> None:
    clock = Clock()
    throttle = FailureThrottle(burst=3, refill_seconds=10, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("client:a", "address:x") == 0
        throttle.failed("client:a", "address:x")
    assert throttle.retry_after("client:a") == 10
    assert throttle.retry_after("address:x") == 10
    assert throttle.retry_after("client:b", "address:y") == 0  # others are not slowed
    assert throttle.retry_after("client:b", "address:x") == 10  # the address is
    clock.now += 4
    assert throttle.retry_after("client:a") == 6
    clock.now += 6
    assert throttle.retry_after("client:a") == 0
    throttle.failed("client:a")
    assert throttle.retry_after("client:a") == 10


def test_the_table_stays_bounded() -> None:
    clock = Clock()
    throttle = FailureThrottle(burst=2, refill_seconds=1, clock=clock)
    throttle.MAX_KEYS = 100
    for i in range(1000):
        throttle.failed(f"address:{i}")
        clock.now += 0.01
    assert len(throttle._buckets) <= 100
