"""The status bar, on every screen: online or offline, what sync is doing (with a count
during a long first sync), what is waiting, when it last synced, the last error."""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

from collections.abc import Callable

from kivy.properties import BooleanProperty  # type: ignore[import-untyped]
from kivy.uix.boxlayout import BoxLayout  # type: ignore[import-untyped]

from client.app.viewmodels import StatusViewModel

from ..ui_thread import ui_callback
from .base import load_kv


class StatusBar(BoxLayout):
    online = BooleanProperty(False)
    signed_in = BooleanProperty(False)

    def attach(
        self,
        model: StatusViewModel,
        *,
        sync_now: Callable[[], None],
        sign_in: Callable[[], None],
        signed_in: Callable[[], bool],
    ) -> None:
        self.model = model
        self._signed_in = signed_in
        self.ids.sync_now_button.bind(on_release=lambda *_: sync_now())
        self.ids.sign_in_button.bind(on_release=lambda *_: sign_in())
        model.subscribe(ui_callback(self.render))
        self.render()

    def render(self) -> None:
        model, ids = self.model, self.ids
        self.online = model.online
        self.signed_in = self._signed_in()
        state = "Online" if model.online else "Offline"
        ids.status_state.text = state
        ids.status_text.text = "" if model.text == state else model.text  # no "Offline Offline"
        ids.status_pending.text = model.pending_text
        ids.status_synced.text = model.last_synced_text
        ids.status_error.text = model.error_text or ""


load_kv(__file__)
