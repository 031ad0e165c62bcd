"""Sign in: a server, a username and a password; sign up, sign in, or continue offline."""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

from concurrent.futures import Future

from client.app.viewmodels import SignInViewModel

from ..ui_thread import on_ui, ui_callback
from .base import AppScreen, load_kv
from .common import set_text


class SignInScreen(AppScreen):
    model: SignInViewModel

    def attach(self, model: SignInViewModel) -> None:
        self.model = model
        model.subscribe(ui_callback(self.render))
        self.render()

    # what the form holds goes to the view model as it is typed

    def field_changed(self, name: str, text: str) -> None:
        if getattr(self.model, name) != text:
            setattr(self.model, name, text)

    # commands

    def sign_in(self) -> None:
        self._after(self.model.sign_in())

    def sign_up(self) -> None:
        self._after(self.model.sign_up())

    def set_new_password(self) -> None:
        """After a one-time password: the new one, then signed in."""
        self._after(self.model.set_new_password())

    def cancel(self) -> None:
        self.model.cancel()

    def continue_offline(self) -> None:
        if self.model.continue_offline():
            self.nav.continued_offline()

    def _after(self, work: Future[bool]) -> None:
        def finished(done: Future[bool]) -> None:
            if not done.cancelled() and done.exception() is None and done.result():
                on_ui(self.nav.signed_in)

        work.add_done_callback(finished)

    # drawing

    def render(self) -> None:
        model, ids = self.model, self.ids
        set_text(ids.server_input, model.server_url)
        set_text(ids.username_input, model.username)
        set_text(ids.password_input, model.password)
        errors = model.field_errors
        ids.signin_error.text = model.error or ""
        ids.server_input.hint_text = errors.get("server_url", "https://outpost.example")
        ids.signin_busy.text = "Talking to the server…" if model.busy else ""
        for button in (ids.sign_in_button, ids.sign_up_button):
            button.disabled = model.busy or model.device is None
        one_time = model.must_change_password
        for widget in (ids.new_password_input, ids.set_password_button):
            widget.opacity, widget.disabled = (1, model.busy) if one_time else (0, True)
        ids.cancel_button.disabled = not model.can_cancel
        ids.cancel_button.opacity = 1 if model.can_cancel else 0
        ids.offline_button.disabled = not model.can_continue_offline  # even while busy
        ids.offline_hint.text = (
            "The server cannot be reached: you can work on this device now and sign in "
            "later; everything you do is sent then."
            if model.offer_offline
            else "No account or no network? Work on this device and sign in later."
        )


load_kv(__file__)
