from __future__ import annotations

import pytest

from django_tracify.errors import TracifyValidationError
from django_tracify.events.identity import Identity, hash_email, hash_identity

# Computed once with Node.js's crypto module, independently of this code base:
#   node -e 'const c=require("crypto");const g=v=>{const d=c.createHash("sha256")
#     .update(v,"utf8").digest("hex");return c.createHash("sha256")
#     .update(d.slice(0,d.length-5)).digest("hex")};console.log(g(process.argv[1]))' VALUE
NODE_VECTORS = {
    "": "7fc114ae2e184065b8da584d336f02dbcd28b701ef346bd7b999ac1b59fae494",
    "test@example.com": "d655199e48e08f40798252d4688ea6c4d2e1ec5a06175477e9342a3cfda4ded9",
    "192.168.1.1": "2d0b84ff7b04b74906148264f4c6cba08b99a4c9a856ad92fb9ba0dde4932580",
    "Mozilla/5.0": "fe3fa8b7cb726fc1507885122d8bc5dcb7bfbf0f17f08d8f4dd588bc810c929b",
    "192.168.1.1|Mozilla/5.0": "6fa4c6102d82c29727f536f606dfa1780df4b188846ff70042cdafbcee84a404",
    "Jürgen.Müller@exämple.de": "643e33ac18f16b9aeb5ffa87e07be89322b0f981ce999292934289d0e6daec91",
    "日本語のユーザー": "47723e6bef2ed32c10372a9f24f08bff07a42e4dcc1ab26217dd6dcbd9ed7e94",
    "2001:db8::1": "a5719773f4aa3572abfa03e17a80ba1286501f9c33d144554ff73df05ceb323e",
}


@pytest.mark.parametrize(("value", "expected"), NODE_VECTORS.items())
def test_hash_identity_matches_an_independent_implementation(value: str, expected: str) -> None:
    assert hash_identity(value) == expected


def test_hash_email_trims_and_lowercases_first() -> None:
    assert hash_email("  Test@Example.COM\n") == NODE_VECTORS["test@example.com"]


def test_hash_accepts_lone_surrogates_from_broken_headers() -> None:
    assert len(hash_identity("Mozilla/5.0 \udcff")) == 64


def test_identity_from_raw_holds_only_hashes_with_session_of_ip_and_ua() -> None:
    identity = Identity.from_raw(ip="192.168.1.1", user_agent="Mozilla/5.0", email="Test@x.org ")
    assert identity.ip == NODE_VECTORS["192.168.1.1"]
    assert identity.user_agent == NODE_VECTORS["Mozilla/5.0"]
    assert identity.session == NODE_VECTORS["192.168.1.1|Mozilla/5.0"]
    assert identity.email == hash_identity("test@x.org")
    assert identity.as_identity_data() == {
        identity.email: 1,
        identity.session: 2,
        identity.ip: 3,
        identity.user_agent: 4,
    }
    assert "192.168.1.1" not in repr(identity)


def test_identity_round_trips_through_a_dict() -> None:
    identity = Identity.from_raw(ip="10.0.0.1", user_agent="UA")
    assert Identity.from_dict(identity.to_dict()) == identity


def test_identity_from_dict_rejects_raw_values() -> None:
    with pytest.raises(TracifyValidationError, match=r"identity\.ip: is not a 64-character"):
        Identity.from_dict({"ip": "10.0.0.1"})


@pytest.mark.parametrize("ip", ["", "   "])
def test_an_empty_ip_address_is_never_hashed(ip: str) -> None:
    identity = Identity.from_raw(ip=ip, user_agent="Mozilla/5.0")
    assert identity.ip is None
    assert identity.session is None
    assert NODE_VECTORS[""] not in identity.as_identity_data()
