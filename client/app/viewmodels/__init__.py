"""The app's logic, in plain view models the Kivy screens bind to (no Kivy here).

Each view model holds a ``Device``, exposes plain data (lists of dicts, small dataclasses),
and has command methods that never raise a ``ClientError`` to the UI: a failure becomes
``error``, in plain words. ``subscribe(callback)`` calls back after every command and
``refresh()``; the screens re-render on it.
"""

from ._base import ViewModel
from ._text import TimeText
from .account import AccountViewModel, ProfileItem
from .board import COLUMN_TITLES, BoardViewModel, Card, CardFilter
from .boards import BoardItem, BoardsViewModel, MemberItem
from .notices import NoticeItem, NoticesViewModel
from .share import ShareViewModel
from .signin import SignIn, SignInViewModel
from .status import StatusViewModel
from .task import CommentItem, TaskViewModel
from .undo import UndoOffer

__all__ = [
    "COLUMN_TITLES",
    "AccountViewModel",
    "BoardItem",
    "BoardViewModel",
    "BoardsViewModel",
    "Card",
    "CardFilter",
    "CommentItem",
    "MemberItem",
    "NoticeItem",
    "NoticesViewModel",
    "ProfileItem",
    "ShareViewModel",
    "SignIn",
    "SignInViewModel",
    "StatusViewModel",
    "TaskViewModel",
    "TimeText",
    "UndoOffer",
    "ViewModel",
]
