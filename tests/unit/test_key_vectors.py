"""Known answers for key wrapping and JWK conversion, from tests/vectors/keys.json (sources
recorded there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from strongroom.crypto import keys

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "keys.json").read_text())


def _cases(group: str) -> list[dict[str, Any]]:
    return list(VECTORS[group]["cases"])


@pytest.mark.parametrize(
    "case", _cases("aes_key_wrap"), ids=lambda c: c["alg"] + "-" + c["data"][:8]
)
def test_aes_key_wrap(case: dict[str, str]) -> None:
    kek, data = bytes.fromhex(case["kek"]), bytes.fromhex(case["data"])
    wrapped = keys.wrap_key("oct", kek, case["alg"], data)
    assert wrapped == bytes.fromhex(case["wrapped"])
    assert keys.unwrap_key("oct", kek, case["alg"], wrapped) == data


@pytest.mark.parametrize("case", _cases("ec_jwk"), ids=lambda c: c["crv"])
def test_ec_jwk_round_trip(case: dict[str, str]) -> None:
    kty, material = keys.from_jwk({"kty": "EC", **case})
    assert kty == "EC"
    assert keys.public_info(kty, material).jwk == {
        "crv": case["crv"],
        "x": case["x"],
        "y": case["y"],
    }
    tampered = dict(case, d=case["x"])  # a private scalar that is not this point's
    with pytest.raises(Exception, match="inconsistent"):
        keys.from_jwk({"kty": "EC", **tampered})
