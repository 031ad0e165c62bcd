"""What the lake can fail with; both are BackendErrors, and neither is the other.

LakeError        something ``outpost lake`` cannot do, said plainly (the CLI prints it)
LakeFileError    a lake file or line that is not in the lake's format
"""

from __future__ import annotations

from backend.errors import BackendError

__all__ = ["LakeError", "LakeFileError"]


class LakeError(BackendError):
    """Something ``outpost lake`` cannot do, said plainly."""


class LakeFileError(BackendError):
    """A lake file or line that is not in the lake's format."""
