"""A scripted run against a running Lokaly (``make dev``): an order from placement to the door.

As the seed_demo accounts: the customer lists the stores and the first store's products,
orders one unit of a product in stock and watches the order on the WebSocket; the worker
confirms it and assigns a demo courier; an admin starts and completes picking (admin
API); the courier sends a location, picks the order up and completes the delivery. The
socket must show every status change once, in order, and a ``courier.location``.
Exits 0 on success, 1 otherwise.

    .venv/bin/python devtools/smoke.py [--until confirmed|delivered] [--timeout 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect


class SmokeFailure(Exception):
    pass


def say(text: str) -> None:
    print(f"smoke: {text}", flush=True)


class Api:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token: str | None = None
        # Never through a proxy: this talks to a server on this machine.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(  # noqa: S310 - the URL is ours (http only)
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with self._opener.open(request, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except OSError as exc:
            raise SmokeFailure(f"{method} {path}: no answer from {self.base_url} ({exc})") from exc
        text = raw.decode("utf-8", errors="replace")
        if status != expect:
            raise SmokeFailure(f"{method} {path}: expected {expect}, got {status}: {text[:500]}")
        try:
            return json.loads(text) if text else None
        except ValueError as exc:
            raise SmokeFailure(f"{method} {path}: answer is not JSON: {text[:200]}") from exc


def ws_url(base_url: str, order_id: str, token: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, f"/ws/orders/{order_id}/", f"token={token}", ""))


COURIERS = ("courier@lokaly.test", "courier2@lokaly.test", "courier3@lokaly.test")


class Watcher:
    """The customer's socket, read in a background thread; every message kept in order."""

    def __init__(self, base_url: str, order_id: str, token: str, open_timeout: float) -> None:
        self.url = ws_url(base_url, order_id, token)
        self.messages: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._closing = threading.Event()
        try:
            self._socket = connect(self.url, proxy=None, open_timeout=open_timeout)
        except (OSError, WebSocketException) as exc:
            raise SmokeFailure(f"socket {self.url.split('?')[0]}: {exc!r}") from exc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in self._socket:
                message = json.loads(raw)
                say(f"socket: {json.dumps(message)}")
                with self._changed:
                    self.messages.append(message)
                    self._changed.notify_all()
        except (OSError, WebSocketException, ValueError) as exc:
            if not self._closing.is_set():
                self.error = exc
        with self._changed:
            self._changed.notify_all()

    def status(self) -> str | None:
        status = None
        for m in self.messages:
            if m.get("type") == "order.snapshot":
                status = m["order"]["status"]
            elif m.get("type") == "order.status_changed":
                status = m.get("status")
        return status

    def wait_for(self, what: str, test: Callable[[], bool], deadline: float) -> None:
        with self._changed:
            while not test():
                if self.error is not None:
                    raise SmokeFailure(f"socket closed while waiting for {what}: {self.error!r}")
                if self.status() == "cancelled" and what != "cancelled":
                    raise SmokeFailure(f"the order was cancelled while waiting for {what}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SmokeFailure(f"timed out waiting for {what} (last: {self.status()})")
                self._changed.wait(min(left, 0.5))

    def wait_status(self, status: str, deadline: float) -> None:
        self.wait_for(f"status {status!r}", lambda: self.status() == status, deadline)

    def close(self) -> None:
        self._closing.set()
        self._socket.close()
        self._thread.join(timeout=5)


def login(api: Api, path: str, email: str, password: str) -> None:
    tokens = api.call("POST", path, {"email": email, "password": password})
    if not tokens or "access" not in tokens:
        raise SmokeFailure(f"POST {path}: no access token in {tokens}")
    api.token = tokens["access"]
    say(f"logged in as {email}")


def place_order(api: Api) -> dict[str, Any]:
    stores = api.call("GET", "/api/stores")["results"]
    if not stores:
        raise SmokeFailure("GET /api/stores: no stores (did seed_demo run?)")
    store = stores[0]
    say(f"{len(stores)} store(s); using {store.get('name')!r} ({store['id']})")

    products = api.call("GET", f"/api/stores/{store['id']}/products")["results"]
    in_stock = [p for p in products if p.get("available_quantity", 0) >= 1]
    if not in_stock:
        raise SmokeFailure(f"store {store['id']} has no product in stock ({len(products)} listed)")
    product = in_stock[0]
    say(
        f"{len(products)} product(s); ordering 1 x {product.get('name')!r} "
        f"(available {product['available_quantity']})"
    )
    order = api.call(
        "POST",
        "/api/orders",
        {
            "store_id": store["id"],
            "items": [{"product_id": product["id"], "quantity": 1}],
            "delivery_address": {
                "line1": "Keizersgracht 1",
                "city": "Amsterdam",
                "postal_code": "1015 CJ",
                "lat": 52.37,
                "lng": 4.89,
            },
        },
        expect=201,
    )
    if order.get("status") != "pending":
        raise SmokeFailure(f"POST /api/orders: expected 'pending', got {order.get('status')!r}")
    say(
        f"order {order.get('number')} ({order['id']}) created: pending, "
        f"total {order.get('total_cents')} {order.get('currency')}"
    )
    return order


def find_courier(
    base_url: str, order_id: str, password: str, deadline: float
) -> tuple[Api, dict[str, Any]]:
    """The demo courier the worker assigned the order to, and the delivery."""
    couriers = []
    for email in COURIERS:
        api = Api(base_url)
        login(api, "/api/auth/token", email, password)
        couriers.append(api)
    while time.monotonic() < deadline:
        for api in couriers:
            for delivery in api.call("GET", "/api/courier/deliveries")["results"]:
                if delivery["order_id"] == order_id:
                    return api, delivery
        time.sleep(0.2)
    raise SmokeFailure("no demo courier was assigned the order in time (are any online?)")


def check_unknown_routes(*base_urls: str) -> None:
    """An unknown route answers 404 in the error envelope on both servers, under make dev's
    DEBUG=1 as in production (the apps are built against make dev)."""
    for base_url in base_urls:
        body = Api(base_url).call("GET", "/api/no-such-route", expect=404)
        if not (isinstance(body, dict) and body.get("error", {}).get("code") == "not_found"):
            raise SmokeFailure(f"{base_url}/api/no-such-route: not the error envelope: {body}")
    say("unknown routes answer 404 in the error envelope on both servers")


def run(args: argparse.Namespace) -> None:
    started = time.monotonic()
    deadline = started + args.timeout
    check_unknown_routes(args.base_url, args.admin_url)
    customer = Api(args.base_url)
    login(customer, "/api/auth/token", args.email, args.password)
    order = place_order(customer)
    watcher = Watcher(args.base_url, order["id"], customer.token or "", args.timeout)
    try:
        watcher.wait_status("confirmed", deadline)
        say("order confirmed by the worker")
        if args.until == "confirmed":
            say(f"OK in {time.monotonic() - started:.1f} s")
            return
        deliver(args, order, watcher, deadline)
    finally:
        watcher.close()
    check_history(watcher.messages)
    notifications = customer.call("GET", "/api/notifications")["results"]
    types = sorted(n["type"] for n in notifications if n.get("order_id") == order["id"])
    say(f"customer notifications for the order: {types}")
    say(f"OK in {time.monotonic() - started:.1f} s")


def deliver(
    args: argparse.Namespace, order: dict[str, Any], watcher: Watcher, deadline: float
) -> None:
    """Staff pick the order, the assigned courier takes it to the door."""
    admin = Api(args.admin_url)
    login(admin, "/api/admin/auth/token", args.admin_email, args.password)
    courier, delivery = find_courier(args.base_url, order["id"], args.password, deadline)
    say(f"delivery {delivery['id']} assigned")
    admin.call("POST", f"/api/admin/orders/{order['id']}/picking/start")
    watcher.wait_status("picking", deadline)
    admin.call("POST", f"/api/admin/orders/{order['id']}/picking/complete")
    watcher.wait_status("ready", deadline)
    courier.call("POST", "/api/courier/location", {"lat": 52.3731, "lng": 4.8922}, expect=204)
    watcher.wait_for(
        "a courier.location message",
        lambda: any(m.get("type") == "courier.location" for m in watcher.messages),
        deadline,
    )
    courier.call("POST", f"/api/courier/deliveries/{delivery['id']}/pickup")
    watcher.wait_status("out_for_delivery", deadline)
    courier.call("POST", f"/api/courier/deliveries/{delivery['id']}/complete")
    watcher.wait_status("delivered", deadline)
    say("order delivered")


def check_history(messages: list[dict[str, Any]]) -> None:
    """Every status change after the snapshot arrived once, in order, without gaps."""
    snapshot = next(m["order"] for m in messages if m.get("type") == "order.snapshot")
    versions = [m["status_version"] for m in messages if m.get("type") == "order.status_changed"]
    expected = list(
        range(snapshot["status_version"] + 1, snapshot["status_version"] + 1 + len(versions))
    )
    if versions != expected:
        raise SmokeFailure(f"status versions on the socket {versions}, expected {expected}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:3000", help="The public API.")
    parser.add_argument("--email", default="customer@lokaly.test")
    parser.add_argument(
        "--password",
        default=os.environ.get("DEMO_PASSWORD") or "lokaly-demo-pass",
        help="Default: DEMO_PASSWORD or seed_demo's lokaly-demo-pass.",
    )
    parser.add_argument("--admin-url", default="http://127.0.0.1:3001", help="The admin API.")
    parser.add_argument("--admin-email", default="admin@lokaly.test")
    parser.add_argument(
        "--until",
        choices=["confirmed", "delivered"],
        default="delivered",
        help="How far to take the order (default: delivered, through picking and a courier).",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="Seconds the whole run may take."
    )
    args = parser.parse_args(argv)
    try:
        run(args)
    except SmokeFailure as exc:
        say(f"FAILED: {exc}")
        return 1
    except (KeyError, TypeError, ValueError) as exc:
        say(f"FAILED: unexpected answer shape: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
