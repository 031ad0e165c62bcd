"""Signatures both ways: Standard Webhooks (through the ``standardwebhooks`` package) and
GitHub's ``X-Hub-Signature-256``; every refusal is SignatureRefused (401)."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook

from backend.gateway.errors import SignatureRefused
from backend.gateway.signatures import (
    new_secret,
    sign_github,
    standard_headers,
    verify_github,
    verify_standard,
)

BODY = b'{"type":"task.closed","data":{"key":"T"}}'


def test_a_signed_delivery_verifies_and_gives_its_id() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    headers = standard_headers(secret, "msg_1", int(time.time()), BODY)
    assert headers["webhook-signature"].startswith("v1,")
    assert verify_standard(secret, BODY, headers) == "msg_1"
    # the reference implementation agrees with what we send
    Webhook(secret).verify(BODY, headers)


def test_standard_refusals() -> None:
    secret = new_secret()
    now = int(time.time())
    good = standard_headers(secret, "msg_1", now, BODY)
    cases = [
        {**good, "webhook-signature": "v1,AAAA"},  # wrong
        {**good, "webhook-signature": "garbage"},  # not versioned
        standard_headers(new_secret(), "msg_1", now, BODY),  # another secret
        standard_headers(secret, "msg_1", now - 3600, BODY),  # too old
        {k: v for k, v in good.items() if k != "webhook-id"},  # missing
        {**good, "webhook-id": "msg_2"},  # another id than signed
    ]
    for headers in cases:
        with pytest.raises(SignatureRefused):
            verify_standard(secret, BODY, headers)
    with pytest.raises(SignatureRefused):
        verify_standard(secret, BODY + b" ", good)


def test_github_signatures() -> None:
    secret = new_secret()
    headers = {"x-hub-signature-256": sign_github(secret, BODY), "x-github-delivery": "g-1"}
    assert verify_github(secret, BODY, headers) == "g-1"
    for bad in (
        {**headers, "x-hub-signature-256": sign_github("other", BODY)},
        {"x-github-delivery": "g-1"},
        {"x-hub-signature-256": sign_github(secret, BODY)},
    ):
        with pytest.raises(SignatureRefused):
            verify_github(secret, BODY, bad)
    with pytest.raises(SignatureRefused):
        verify_github(secret, BODY + b"x", headers)
