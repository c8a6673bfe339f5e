"""Shamir M-of-N over the domain transport key: every M-subset recovers it, no smaller one."""

from __future__ import annotations

import itertools
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.crypto.domain import combine, split


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=2, max_value=6).flatmap(
    lambda n: st.tuples(st.integers(min_value=2, max_value=n), st.just(n))
))  # fmt: skip
def test_every_quorum_recovers_and_no_smaller_set_does(mn: tuple[int, int]) -> None:
    quorum, count = mn
    secret = os.urandom(32)
    shares = split(secret, quorum, count)
    assert len(shares) == count
    for subset in itertools.combinations(shares, quorum):
        assert combine(list(subset)) == secret
    for subset in itertools.combinations(shares, quorum - 1):
        if len(subset) >= 1:
            assert combine(list(subset)) != secret
