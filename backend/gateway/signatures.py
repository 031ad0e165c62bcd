"""Signatures of webhooks, both ways: Standard Webhooks (outbound, and the generic inbound
source) and GitHub's ``X-Hub-Signature-256`` (the github inbound source).

Standard Webhooks (https://www.standardwebhooks.com): the secret is ``whsec_`` + base64 of
random bytes; a delivery carries ``webhook-id`` (the same on every retry), ``webhook-
timestamp`` (seconds) and ``webhook-signature`` (``v1,`` + base64 of HMAC-SHA256 over
``id.timestamp.body``); a receiver refuses a timestamp more than 5 minutes off. The
``standardwebhooks`` package does the signing and verifying, so we follow the reference
implementation, not our reading of the spec.

GitHub signs the body alone: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`` with the
secret as given (we generate the same ``whsec_`` secrets for it; GitHub takes any string).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from backend.gateway.errors import SignatureRefused

__all__ = [
    "new_secret",
    "sign_github",
    "sign_standard",
    "standard_headers",
    "verify_github",
    "verify_standard",
]

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign_standard(secret: str, message_id: str, timestamp_s: int, body: bytes) -> str:
    """The ``webhook-signature`` header of one delivery."""
    when = datetime.fromtimestamp(timestamp_s, tz=UTC)
    return Webhook(secret).sign(message_id, when, body.decode())


def standard_headers(secret: str, message_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    """The three headers of a signed delivery."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": sign_standard(secret, message_id, timestamp_s, body),
    }


def verify_standard(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """The delivery's ``webhook-id`` once its signature and timestamp verify; else
    SignatureRefused (401)."""
    wanted = ("webhook-id", "webhook-timestamp", "webhook-signature")
    found = {name: headers.get(name) for name in wanted}
    missing = [name for name, value in found.items() if not value]
    if missing:
        raise SignatureRefused(
            f"missing header {missing[0]}: sign deliveries per Standard Webhooks"
        )
    try:
        Webhook(secret).verify(
            body, {k: v for k, v in found.items() if v is not None}, json_parse=False
        )
    except WebhookVerificationError as exc:
        raise SignatureRefused(f"the signature does not verify: {exc}") from None
    except ValueError as exc:  # a body that is no JSON
        raise SignatureRefused(f"the signature does not verify: {exc}") from None
    delivery = found["webhook-id"]
    assert delivery is not None
    return delivery


def sign_github(secret: str, body: bytes) -> str:
    """GitHub's ``X-Hub-Signature-256`` of a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_github(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """The delivery's ``X-GitHub-Delivery`` once ``X-Hub-Signature-256`` verifies."""
    signature = headers.get("x-hub-signature-256")
    delivery = headers.get("x-github-delivery")
    if not signature:
        raise SignatureRefused("missing header X-Hub-Signature-256: set the webhook's secret")
    if not hmac.compare_digest(signature.strip().encode(), sign_github(secret, body).encode()):
        raise SignatureRefused("X-Hub-Signature-256 does not verify with this source's secret")
    if not delivery:
        raise SignatureRefused("missing header X-GitHub-Delivery")
    return delivery
