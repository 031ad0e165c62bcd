"""Errors of the external service gateway, under ``backend.errors.BackendError``.

BackendError
└── GatewayError                  base of the gateway's errors
    ├── SignatureRefused    401   an inbound delivery whose signature does not verify
    ├── NotBoardOwner       403   only a board's owner registers its webhooks and sources
    ├── NotRegistered       404   no such source, board, endpoint or delivery
    ├── TargetRefused       422   a webhook URL outside ``OUTPOST_WEBHOOK_ALLOW``
    └── DeliveryUnreadable  422   an inbound body its source's mapping cannot read
"""

from __future__ import annotations

from backend.errors import BackendError

__all__ = [
    "DeliveryUnreadable",
    "GatewayError",
    "NotBoardOwner",
    "NotRegistered",
    "SignatureRefused",
    "TargetRefused",
]


class GatewayError(BackendError):
    status_code = 400


class SignatureRefused(GatewayError):
    status_code = 401


class NotBoardOwner(GatewayError):
    status_code = 403


class NotRegistered(GatewayError):
    status_code = 404


class TargetRefused(GatewayError):
    status_code = 422


class DeliveryUnreadable(GatewayError):
    status_code = 422
