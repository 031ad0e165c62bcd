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
    form_shown = BooleanProperty(False)
    """The sign-in form is on screen: its own "Sign in" is the one shown."""

    _unsubscribe: Callable[[], None] | None = None
    _sync_now: Callable[[], None]
    _sign_in: Callable[[], None]

    def attach(
        self,
        model: StatusViewModel,
        *,
        sync_now: Callable[[], None],
        sign_in: Callable[[], None],
        signed_in: Callable[[], bool],
    ) -> None:
        """Again after an account switch: the new profile's model replaces the old one."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        else:  # the buttons are bound once, to whatever is attached
            self.ids.sync_now_button.bind(on_release=lambda *_: self._sync_now())
            self.ids.sign_in_button.bind(on_release=lambda *_: self._sign_in())
        self.model, self._signed_in = model, signed_in
        self._sync_now, self._sign_in = sync_now, sign_in
        self._unsubscribe = model.subscribe(ui_callback(self.render))
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
