"""One error tree for the client: every exception class defined in the client's code that
runs without a window (``client/*.py``, ``client/store``, ``client/sync``, the view models)
derives from ``client.errors.ClientError`` (``client/errors.py`` draws the tree). The rest
of ``client/app`` imports Kivy, whose import starts processes, and defines widgets only."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator

import client
from client.errors import ClientError

WALKED = ("client.store", "client.sync", "client.app.viewmodels")


def _module_names() -> Iterator[str]:
    for module_info in pkgutil.iter_modules(client.__path__, "client."):
        if not module_info.ispkg:
            yield module_info.name
    for package_name in WALKED:
        package = importlib.import_module(package_name)
        yield package_name
        for module_info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            yield module_info.name


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _module_names():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_client_exception_derives_from_client_error() -> None:
    classes = _exception_classes()
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, ClientError))
    assert outside == [], f"exception classes outside the ClientError tree: {outside}"
    assert {"client.errors.StoreError", "client.app.viewmodels._validation.Refused"} <= set(classes)
