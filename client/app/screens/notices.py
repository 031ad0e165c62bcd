"""Notices: changes the backend refused or undid, what happened and why; dismissable.

The panel sits above the status bar and takes no room while there is nothing to say."""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

from typing import Any

from kivy.properties import BooleanProperty, StringProperty  # type: ignore[import-untyped]
from kivy.uix.boxlayout import BoxLayout  # type: ignore[import-untyped]

from client.app.viewmodels import NoticeItem, NoticesViewModel

from ..ui_thread import ui_callback
from .base import load_kv
from .common import Row


class NoticeRow(Row):
    title = StringProperty("")
    message = StringProperty("")
    reason = StringProperty("")


class NoticesPanel(BoxLayout):
    has_notices = BooleanProperty(False)

    def on_touch_down(self, touch: Any) -> bool:
        # folded away (0 high), its rows still stand out over the screen above it, and a
        # disabled widget takes every touch that lands on it: take none
        if not self.has_notices:
            return False
        return bool(super().on_touch_down(touch))

    def attach(self, model: NoticesViewModel) -> None:
        self.model = model
        self._drawn: list[NoticeItem] | None = None
        model.subscribe(ui_callback(self.render))
        self.render()

    def dismiss(self, notice: str) -> None:
        self.model.dismiss(notice)

    def dismiss_all(self) -> None:
        self.model.dismiss_all()

    def render(self) -> None:
        ids, notices = self.ids, self.model.notices
        ids.notices_error.text = self.model.error or ""
        if notices == self._drawn:
            return  # keep the widgets (and a tap in progress)
        self._drawn = [NoticeItem(**notice) for notice in notices]
        ids.notice_list.clear_widgets()
        for index, notice in enumerate(notices):
            ids.notice_list.add_widget(self._row(index, notice))
        ids.notices_title.text = f"Notices  ·  {len(notices)}" if notices else ""
        self.has_notices = bool(notices)

    def _row(self, index: int, notice: NoticeItem) -> NoticeRow:
        row = NoticeRow(
            locator=f"notice:{index}",
            title=f"{notice['title']} · {notice['time']}",
            message=notice["message"],
            reason=notice["reason"],
        )
        row.ids.dismiss_button.bind(on_release=lambda *_: self.dismiss(notice["id"]))
        return row


load_kv(__file__)
