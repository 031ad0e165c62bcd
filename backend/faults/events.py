"""What the fault stream holds, shared by the consumer runner and ``outpost faults``.

``OUTPOST_FAULTS`` carries two kinds of records:

- ``outpost.faults.<component>``: a ``FaultEvent``, one message a component could not
  process, with the original bytes. Its id is its sequence in ``OUTPOST_FAULTS``.
- ``outpost.faults.<component>.resolved``: a ``Resolution``, what an operator did with one
  fault (resubmitted it, or dropped it). ``outpost faults list`` hides resolved faults.

A resubmission is a message on ``outpost.resubmit.<component>`` (stream
``OUTPOST_RESUBMIT``) whose body is the event to apply and whose headers say where it came
from (the ``HEADER_*`` names below).
"""

from __future__ import annotations

import msgspec

HEADER_FAULT_ID = "Outpost-Fault-Id"
"""The id (``OUTPOST_FAULTS`` sequence) of the fault a resubmission resolves."""
HEADER_ORIGINAL_SEQ = "Outpost-Original-Seq"
"""The ``OUTPOST_EVENTS`` sequence of the event: it keeps it as ``Event.seq``."""
HEADER_ORIGINAL_SUBJECT = "Outpost-Original-Subject"


class FaultEvent(msgspec.Struct, kw_only=True):
    """One message a component could not process."""

    component: str
    seq: int
    """The event's ``OUTPOST_EVENTS`` sequence (kept through resubmissions)."""
    subject: str
    """The subject the event was published on (``outpost.events.<board>``)."""
    error: str
    deliveries: int
    """How many times the component tried it before giving up."""
    event_id: str | None
    data: str
    """The original message, base64: it may not even be UTF-8."""
    at: int
    """When it was faulted (ms)."""
    resubmit_seq: int | None = None
    """Set when it failed again after a resubmission: its ``OUTPOST_RESUBMIT`` sequence."""
    resubmitted_from: int | None = None
    """... and the id of the fault that resubmission resolved."""


class Resolution(msgspec.Struct, kw_only=True):
    """What an operator did with one fault; the fault is no longer listed as open."""

    fault: int
    """The fault's id (its ``OUTPOST_FAULTS`` sequence)."""
    component: str
    action: str
    """``resubmitted`` or ``dropped``."""
    at: int
    resubmit_seq: int | None = None
    """For ``resubmitted``: the ``OUTPOST_RESUBMIT`` sequence of the resubmission."""
