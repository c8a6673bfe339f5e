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


def test_the_same_custodian_key_twice_is_named_not_a_crash() -> None:
    import pytest
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding

    from strongroom.crypto.domain import export, open_export
    from strongroom.errors import BadParameter
    from tests.x509util import private_pem, self_signed

    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    certs = [
        self_signed(k, f"custodian-{i}").public_bytes(Encoding.PEM) for i, k in enumerate(keys)
    ]
    content = export(
        {"id": "d", "name": "d"}, {"v1": {"key": os.urandom(32), "created": 1}}, certs, 2
    )
    pems = [private_pem(k) for k in keys]
    with pytest.raises(BadParameter, match="Key 2 is the same custodian key as key 1"):
        open_export(content, [pems[0], pems[0], pems[2]])
    domain, opened = open_export(content, [pems[0], pems[2]])
    assert domain == {"id": "d", "name": "d"} and set(opened) == {"v1"}
