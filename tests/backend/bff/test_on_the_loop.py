"""Every guard and dependency of the BFF runs on the event loop. Litestar runs a plain
function guard or provider on a worker thread: a hop there and back on every request that
passes it (the admin gate was one, on every push: a loop wake-up, up to milliseconds on a
busy machine, before the push was even read)."""

from __future__ import annotations

from typing import cast

from litestar.handlers import HTTPRouteHandler
from litestar.utils.predicates import is_async_callable

from backend.bff.app import Services, create_app
from backend.config import Settings
from outpost.docs import _NoServices


def test_no_request_hops_to_a_worker_thread_for_a_guard_or_a_dependency() -> None:
    app = create_app(cast(Services, _NoServices(Settings())))
    on_threads = []
    handlers = [h for route in app.routes for h in route.route_handlers]  # type: ignore[attr-defined]
    assert any(h.handler_name == "push" for h in handlers if isinstance(h, HTTPRouteHandler))
    for handler in handlers:
        for guard in handler.resolve_guards():
            if not is_async_callable(guard):
                on_threads.append(f"{handler.handler_name}: guard {guard!r}")
        for name, provider in handler.resolve_dependencies().items():
            if provider.has_sync_callable and provider.sync_to_thread is not False:
                on_threads.append(f"{handler.handler_name}: dependency {name}")
    assert on_threads == []
