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
    sync_controls = BooleanProperty(False)
    """"Sync now" is shown only once the profile has an account."""

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
        self.sync_controls = model.show_sync_controls
        # each thing once: the state word, what sync does, what waits, when it last synced
        ids.status_state.text = model.state_text
        ids.status_text.text = model.activity_text
        ids.status_pending.text = model.pending_text if model.show_sync_controls else ""
        ids.status_synced.text = model.last_synced_text if model.show_sync_controls else ""
        ids.status_error.text = model.error_text or ""


load_kv(__file__)
