"""The API docs page (``/api/docs/``) of both servers in a real browser, offline.

Both servers run as processes the way ``make dev`` runs them (their base settings, DEBUG
on) on the test database; the machine's headless Chromium, driven by Playwright, may reach
nothing but them: every other request is refused and recorded, so the page has to render
from what the servers themselves serve. No rows are needed: the page shows the schema.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.admin.browser import playwright_args
from tests.live import (
    delete_namespace_keys,
    free_port,
    live_environment,
    session_namespace,
    spawn,
    stop,
    wait_ready,
)

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (requirements/dev.txt)"
)

# The servers need the test database: without a test asking for it, none is created.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

SCREENSHOTS = Path(os.environ.get("BROWSER_SCREENSHOTS", tempfile.gettempdir()))
# The order operations as Swagger UI renders them: id="operations-<tag>-<operationId>".
ORDER_OPERATIONS = {
    "public": {
        "operations-orders-orders_list": ("GET", "/api/orders"),
        "operations-orders-orders_create": ("POST", "/api/orders"),
        "operations-orders-orders_retrieve": ("GET", "/api/orders/{order_id}"),
    },
    "admin": {
        "operations-admin-admin_orders_list": ("GET", "/api/admin/orders"),
        "operations-admin-admin_orders_retrieve": ("GET", "/api/admin/orders/{order_id}"),
    },
}
TITLES = {"public": "Lokaly public API", "admin": "Lokaly admin API"}


@pytest.fixture(scope="module")
def dev_servers(django_db_setup: None) -> Iterator[dict[str, str]]:
    """``manage_public.py serve`` and ``manage_admin.py serve`` with their base settings and
    DEBUG=1, as ``make dev`` starts them, on free ports and the test database; yields
    ``{"public": url, "admin": url}``."""
    namespace = session_namespace("lokaly-docs-browser")
    env = live_environment(namespace)
    logs: dict[str, Path] = {}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    try:
        for name in ("public", "admin"):
            port = free_port()
            command = [f"manage_{name}.py", "serve", "--no-migrate", "--port", str(port),
                       "--workers", "1"]
            settings_module = f"lokaly_{name}.settings.base"
            server_env = {**env, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": settings_module}
            procs[name] = spawn(f"docs-{name}", command, server_env, logs)
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            wait_ready(url, procs, logs)
        yield urls
    finally:
        for proc in procs.values():
            stop(proc)
        delete_namespace_keys(namespace)


@pytest.mark.parametrize("server", ["public", "admin"])
def test_the_docs_page_renders_the_order_operations_offline(
    chromium: str, dev_servers: dict[str, str], server: str
) -> None:
    base = dev_servers[server]
    own_host = urlsplit(base).netloc
    offsite: list[str] = []
    failed: list[str] = []

    def only_this_server(route: Any) -> None:
        if urlsplit(route.request.url).netloc == own_host:
            route.continue_()
        else:
            offsite.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=playwright_args()
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", only_this_server)
            page.on(
                "response",
                lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            page.on("pageerror", lambda e: failed.append(f"script error: {e}"))

            # when the docs page is opened
            page.goto(f"{base}/api/docs/")

            # then Swagger UI renders the schema: its title and the order operations
            first = next(iter(ORDER_OPERATIONS[server]))
            try:
                page.wait_for_selector(f"#{first}", timeout=30_000)
            except sync_api.TimeoutError:
                pytest.fail(f"no #{first} on the page; refused: {offsite}, failed: {failed}")
            assert TITLES[server] in page.inner_text(".information-container .title")
            for element_id, (method, path) in ORDER_OPERATIONS[server].items():
                operation = page.locator(f"#{element_id}")
                assert operation.locator(".opblock-summary-method").inner_text() == method
                assert operation.locator(".opblock-summary-path").inner_text() == path
            page.screenshot(path=str(SCREENSHOTS / f"lokaly-{server}-api-docs.png"))
        finally:
            browser.close()

    assert offsite == []
    assert failed == []


@pytest.mark.parametrize("server", ["public", "admin"])
def test_an_unknown_route_on_a_dev_server_is_the_envelope(
    dev_servers: dict[str, str], server: str
) -> None:
    response = httpx.get(f"{dev_servers[server]}/api/no-such-route", timeout=5)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": {
        "code": "not_found", "message": "No resource at /api/no-such-route.", "details": {},
    }}
