"""The gateway's routes in the BFF app, without a backend: OPTIONS names every method of a
path that has two handlers (Litestar alone would name the first handler's only)."""

from __future__ import annotations

from typing import cast

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backend.bff.app import Services, create_app
from backend.config import Settings
from outpost.docs import _NoServices


@pytest.fixture(scope="module")
def app() -> Litestar:
    """The app as ``outpost docs`` builds it: routes and documents, no services."""
    return create_app(cast(Services, _NoServices(Settings())))


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/boards/b/webhooks", "GET, OPTIONS, POST"),
        ("/v1/boards/b/sources/github", "DELETE, OPTIONS, PUT"),
        ("/v1/boards/b/logins/octocat", "DELETE, OPTIONS, PUT"),
        ("/v1/boards/b/webhooks/e", "DELETE, OPTIONS"),
        ("/v1/inbound/github/b", "OPTIONS, POST"),
    ],
)
def test_options_names_every_method_of_the_path(app: Litestar, path: str, allow: str) -> None:
    reply = TestClient(app).options(path)
    assert reply.status_code == 204
    assert reply.headers["allow"] == allow


def test_the_registration_routes_are_documented_with_their_errors(app: Litestar) -> None:
    paths = app.openapi_schema.paths or {}
    webhooks = paths["/v1/boards/{board}/webhooks"]
    assert webhooks.post is not None and webhooks.get is not None
    assert {"201", "403", "404", "422"} <= set(webhooks.post.responses or {})
    inbound = paths["/v1/inbound/{source}/{board}"].post
    assert inbound is not None
    assert {"200", "202", "401", "404", "422"} <= set(inbound.responses or {})
    assert not inbound.security
