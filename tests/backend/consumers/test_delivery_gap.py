"""A batch of the event stream must go on right after the consumer's position.

Two runners of one component on one durable consumer (one of them lost its lease with a
database restart and has not noticed yet) split the events between them. The holder must
not commit a batch that skips the events the other one took: it would pass them for good.
The runner refuses such a batch (``DeliveryGap``) and subscribes again from its position;
``outpost conflicts --cluster`` showed the loss before (events accepted, never applied).
"""

from __future__ import annotations

import pytest

from backend.consumers.runner import _check_no_gap
from backend.errors import BackendError, DeliveryGap


def test_a_batch_right_after_the_position_passes() -> None:
    _check_no_gap("projector", 26, [27, 28, 29])
    _check_no_gap("projector", 26, [28, 27])  # a redelivery may come out of order
    _check_no_gap("projector", 26, [])


@pytest.mark.parametrize("seqs", [(28, 29, 30), (27, 29), (28,)])
def test_a_batch_that_skips_events_is_refused(seqs: tuple[int, ...]) -> None:
    with pytest.raises(DeliveryGap, match="does not follow the position 26"):
        _check_no_gap("projector", 26, list(seqs))
    assert issubclass(DeliveryGap, BackendError)
