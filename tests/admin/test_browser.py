"""The Django admin site in a real browser: the machine's headless Chromium, driven by
Playwright, against the admin server started as a process on the test database.

Playwright (Python) drives Debian's Chromium through ``executable_path``; its own browser
download is never used. Its sync API runs an event loop in this thread, and Django
refuses ORM calls while one runs, so every row is written before the browser starts.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lokaly_core.accounts.models import Role
from lokaly_core.orders.models import Order
from tests.admin.browser import playwright_args
from tests.factories import PASSWORD, ProductFactory, StockFactory, StoreFactory, UserFactory
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

SCREENSHOTS = Path(os.environ.get("BROWSER_SCREENSHOTS", tempfile.gettempdir()))


@pytest.fixture(scope="module")
def admin_server(django_db_setup: None) -> Iterator[str]:
    """``manage_admin.py serve`` on a free port and the test database; yields its URL."""
    port = free_port()
    namespace = session_namespace("lokaly-browser")
    env = {**live_environment(namespace), "DJANGO_SETTINGS_MODULE": "lokaly_admin.settings.test"}
    command = ["manage_admin.py", "serve", "--no-migrate", "--port", str(port), "--workers", "1"]
    logs: dict[str, Path] = {}
    server = spawn("browser-admin", command, env, logs)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, {"admin": server}, logs)
        yield url
    finally:
        stop(server)
        delete_namespace_keys(namespace)


@pytest.mark.e2e
def test_staff_logs_in_filters_orders_by_status_and_opens_one(
    transactional_db: None,
    chromium: str,
    admin_server: str,
    make_order: Callable[..., Order],
) -> None:
    # given a staff account, two confirmed orders and a pending one (committed rows)
    staff = UserFactory(role=Role.ADMIN, email="ops@lokaly.test")
    stock = StockFactory(
        store=StoreFactory(name="Jordaan"),
        product=ProductFactory(name="Oat milk 1 l", price_cents=249),
        on_hand=20,
    )
    confirmed = [make_order(stock, quantity=2), make_order(stock, quantity=1)]
    pending = make_order(stock, quantity=1, confirm=False)
    failed_responses: list[str] = []

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=playwright_args()
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "response",
                lambda r: (
                    failed_responses.append(f"{r.status} {r.url}") if r.status >= 400 else None
                ),
            )

            # when they log in and filter the order list by status
            page.goto(f"{admin_server}/admin/login/?next=/admin/core/order/")
            page.fill("#id_username", staff.email)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url("**/admin/core/order/")
            page.click("#changelist-filter a:text-is('Confirmed')")
            page.wait_for_url("**status__exact=confirmed**")

            # then only the confirmed orders are listed
            rows = page.locator("#result_list tbody tr")
            numbers = sorted(rows.locator("th.field-number a").all_inner_texts())
            assert numbers == sorted(o.number for o in confirmed)
            assert pending.number not in page.inner_text("#result_list")
            assert set(rows.locator("td.field-status").all_inner_texts()) == {"Confirmed"}
            assert set(rows.locator("td.field-store").all_inner_texts()) == {"Jordaan"}
            shot = SCREENSHOTS / "lokaly-admin-orders-confirmed.png"
            page.screenshot(path=str(shot), full_page=True)
            # The admin's stylesheet was served (whitenoise) and applied to the page.
            header_color = page.eval_on_selector(
                "#header", "e => getComputedStyle(e).backgroundColor"
            )
            assert header_color not in ("", "rgba(0, 0, 0, 0)", "transparent")

            # when they open the first order
            first = confirmed[0]
            page.click(f"#result_list a:text-is('{first.number}')")
            # (the link carries the list's filters along: ?_changelist_filters=...)
            page.wait_for_url(re.compile(f"/admin/core/order/{first.pk}/change/"))

            # then its lines and its history are shown, read-only
            assert "Oat milk 1 l" in page.inner_text("#lines-group")
            assert "4.98 EUR" in page.inner_text("#lines-group")
            history = page.inner_text("#history-group")
            assert "Pending" in history
            assert "Confirmed" in history
            assert page.locator("input[name=status], select[name=status]").count() == 0
            page.screenshot(path=str(SCREENSHOTS / "lokaly-admin-order.png"), full_page=True)
        finally:
            browser.close()

    assert failed_responses == []
    assert shot.stat().st_size > 10_000
