"""The boards: the list, create; for the selected one rename, archive, share, members."""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

import copy
from typing import Any

from kivy.properties import StringProperty  # type: ignore[import-untyped]

from client.app.viewmodels import BoardItem, BoardsViewModel, MemberItem

from ..ui_thread import ui_callback
from .base import AppScreen, load_kv
from .common import Row, set_text


class BoardRow(Row):
    title = StringProperty("")
    detail = StringProperty("")


class MemberRow(Row):
    username = StringProperty("")
    detail = StringProperty("")


class BoardsScreen(AppScreen):
    user_text = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model: BoardsViewModel | None = None
        self._drawn: object = None

    def attach(self, model: BoardsViewModel, user_text: str) -> None:
        self.model = model
        self.user_text = user_text
        model.subscribe(ui_callback(self.render))
        self.render()

    def on_pre_enter(self, *_args: object) -> None:
        if self.model is not None:
            self.model.refresh()

    # commands

    def create(self) -> None:
        """A new board, opened at once (what a user makes a board for)."""
        model, field = self._model(), self.ids.new_board_input
        board = self.act(lambda: model.create(field.text))
        if board:
            field.text = ""
            self.open(board)

    def select(self, board_id: str) -> None:
        self.ids.share_error.text = self.ids.share_note.text = ""  # said of another board
        self._model().select(board_id)

    def open(self, board_id: str) -> None:
        self.nav.open_board(board_id)

    def open_selected(self) -> None:
        board = self._selected()
        if board is not None:
            self.open(board["id"])

    def rename(self) -> None:
        model, board = self._model(), self._selected()
        if board is not None:
            self.act(lambda: model.rename(board["id"], self.ids.rename_input.text))

    def toggle_archived(self) -> None:
        model, board = self._model(), self._selected()
        if board is not None:
            flip = model.unarchive if board["archived"] else model.archive
            self.act(lambda: flip(board["id"]))

    def set_wip_limit(self) -> None:
        model, board = self._model(), self._selected()
        if board is not None:
            self.act(lambda: model.set_wip_limit(board["id"], self.ids.wip_input.text))

    def share(self) -> None:
        """The name is checked with the server first; the answer comes on the UI thread."""
        board, field = self._selected(), self.ids.share_input
        if board is None:
            return
        dialog = self._model().share_dialog(board["id"])

        def answered() -> None:  # said under the share field, where the user looks
            ids = self.ids
            if dialog.busy:
                ids.share_error.text, ids.share_note.text = "", "Checking the name…"
                return
            if dialog.shared is not None:
                field.text = ""
                self.nav.changed_locally()
            shared = f"Shared with {dialog.shared}" if dialog.shared is not None else ""
            ids.share_error.text = dialog.error or ""
            ids.share_note.text = "" if dialog.error else (dialog.note or shared)

        dialog.subscribe(ui_callback(answered))
        dialog.submit(field.text)

    def unshare(self, username: str) -> None:
        model, board = self._model(), self._selected()
        if board is not None:
            self.act(lambda: model.unshare(board["id"], username))

    def on_shortcut(self, name: str) -> bool:
        if name == "new":
            self.ids.new_board_input.focus = True
        elif name == "open":
            self.open_selected()
        else:
            return False
        return True

    def _model(self) -> BoardsViewModel:
        assert self.model is not None, "the boards screen has no view model yet"
        return self.model

    def _selected(self) -> BoardItem | None:
        model = self._model()
        return next((b for b in model.boards if b["id"] == model.selected), None)

    # drawing

    def render(self) -> None:
        model, ids = self._model(), self.ids
        ids.boards_error.text = model.error or ""
        board = self._selected()
        members = model.members(board["id"]) if board is not None else []
        drawn = (model.boards, model.selected, members)
        if drawn == self._drawn:
            return  # a sync changed nothing here: keep the widgets (and a tap in progress)
        self._drawn = copy.deepcopy(drawn)
        ids.board_list.clear_widgets()
        for board in model.boards:
            ids.board_list.add_widget(self._row(board, board["id"] == model.selected))
        ids.boards_empty.text = (
            "" if model.boards else "No boards yet: name one above and press Create."
        )
        self._render_detail(board, members)

    def _row(self, board: BoardItem, selected: bool) -> BoardRow:
        flags = ["yours" if board["is_owner"] else f"owner {board['owner']}"]
        if board["archived"]:
            flags.append("archived")
        row = BoardRow(
            locator=f"board:{board['name']}",
            title=board["name"],
            detail=" · ".join(flags),
            selected=selected,
        )
        row.ids.select_button.bind(on_release=lambda *_: self.select(board["id"]))
        row.ids.open_button.bind(on_release=lambda *_: self.open(board["id"]))
        return row

    def _render_detail(self, board: BoardItem | None, members: list[MemberItem]) -> None:
        ids = self.ids
        ids.detail.disabled = board is None
        ids.detail.opacity = 0 if board is None else 1
        ids.member_list.clear_widgets()
        if board is None:
            ids.detail_title.text = ""
            return
        ids.detail_title.text = board["name"] + ("  (archived)" if board["archived"] else "")
        if not ids.rename_input.focus:
            set_text(ids.rename_input, board["name"])
        ids.archive_button.text = "Unarchive" if board["archived"] else "Archive"
        if not ids.wip_input.focus:
            limit = board["wip_limit"]
            set_text(ids.wip_input, "" if limit is None else str(limit))
        for widget in (ids.rename_button, ids.archive_button, ids.share_button, ids.wip_button):
            widget.disabled = not board["is_owner"]
        for member in members:
            ids.member_list.add_widget(self._member(member, board["is_owner"]))

    def _member(self, member: MemberItem, can_remove: bool) -> MemberRow:
        role = "owner" if member["role"] == "owner" else "member"
        row = MemberRow(
            locator=f"member:{member['username']}",
            username=member["username"],
            detail=f"{role}{' · you' if member['is_you'] else ''}",
        )
        row.ids.remove_button.disabled = not can_remove or member["role"] == "owner"
        row.ids.remove_button.bind(on_release=lambda *_: self.unshare(member["username"]))
        return row


load_kv(__file__)
