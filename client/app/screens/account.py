"""The account: sign out, change the password, switch to another account (each account has
its own profile folder; the app reopens on it)."""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from client.app.viewmodels import AccountViewModel

from ..ui_thread import on_ui, ui_callback
from .base import AppScreen, load_kv


class AccountScreen(AppScreen):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model: AccountViewModel | None = None
        self._unsubscribe: Any = None

    def attach(self, model: AccountViewModel) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.model = model
        self._unsubscribe = model.subscribe(ui_callback(self.render))
        self.render()

    def detach(self) -> None:
        """Forget the model: its profile is closing (an account switch), and an answer on
        its way must not draw from a closed store."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.model, self._unsubscribe = None, None

    def on_pre_enter(self, *_args: object) -> None:
        if self.model is not None:
            self.render()

    def sign_out(self) -> None:
        model = self.model
        if model is None:
            return

        def done(answer: Future[bool]) -> None:
            if not answer.cancelled() and answer.exception() is None and answer.result():
                on_ui(lambda: self.nav.signed_out(model.message or ""))

        model.sign_out().add_done_callback(done)

    def change_password(self) -> None:
        ids = self.ids
        if self.model is not None:
            self.model.change_password(
                ids.current_password_input.text,
                ids.new_password_input.text,
                ids.again_password_input.text,
            )

    def switch(self) -> None:
        model = self.model
        if model is not None and model.switch(self.ids.switch_input.text):
            self.ids.switch_input.text = ""
            if model.switch_to is not None:
                self.nav.switch_profile(model.switch_to, model.message, model.switch_name)

    def render(self) -> None:
        model, ids = self.model, self.ids
        if model is None:
            return
        ids.account_title.text = f"Signed in as {model.username}" if model.username else (
            "Not signed in"
        )  # fmt: skip
        ids.account_message.text = model.message or model.kept_text
        ids.account_error.text = model.error or ""
        ids.sign_out_button.disabled = model.busy or model.signed_out or not model.username
        ids.change_password_button.disabled = model.busy or not model.username
        if model.message and model.message.startswith("Password changed"):
            for field in ("current", "new", "again"):
                ids[f"{field}_password_input"].text = ""


load_kv(__file__)
