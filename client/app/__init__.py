"""The Kivy app: screens in ``client/app/screens`` bound to the plain view models in
``client/app/viewmodels`` (which import no Kivy and are tested without a window)."""
