"""The WIP-limit saga (SPEC section 5), its two backend halves; its rules are ``protocol.saga``.

- ``workload``: the ``workload`` stream component. It follows ``OUTPOST_EVENTS`` in order
  with the merged saga fields of every task and publishes a ``WipLimitExceeded`` for each
  cause.
- ``compensator``: the task side, run inside the projector (which owns the task views): it
  keeps what a compensation of each possible cause would restore, answers a
  ``WipLimitExceeded`` with the compensating ``TaskUpdated``, and writes the notice for the
  cause's actor when that compensation comes back through the stream.
"""
