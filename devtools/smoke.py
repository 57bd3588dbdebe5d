"""A scripted customer against a running Lokaly (``make dev``): the happy path, end to end.

Logs in as the seed_demo customer, lists the stores and the first store's products,
orders one unit of a product in stock, then follows the order over the WebSocket until
the worker has confirmed it (status ``confirmed``). Exits 0 on success, 1 otherwise.

    .venv/bin/python devtools/smoke.py [--base-url http://127.0.0.1:3000] [--timeout 15]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
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


def run(base_url: str, email: str, password: str, timeout: float) -> None:
    started = time.monotonic()
    api = Api(base_url)

    tokens = api.call("POST", "/api/auth/token", {"email": email, "password": password})
    if not tokens or "access" not in tokens:
        raise SmokeFailure(f"POST /api/auth/token: no access token in {tokens}")
    api.token = tokens["access"]
    say(f"logged in as {email}")

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

    follow_order(base_url, order["id"], api.token, time.monotonic() + timeout)
    say(f"OK in {time.monotonic() - started:.1f} s")


def follow_order(base_url: str, order_id: str, token: str, deadline: float) -> None:
    """Read the order's socket until it shows status ``confirmed``, or fail at the deadline."""

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SmokeFailure("the order was not confirmed in time (is the worker running?)")
        return left

    url = ws_url(base_url, order_id, token)
    try:
        with connect(url, proxy=None, open_timeout=remaining()) as socket:
            first = json.loads(socket.recv(timeout=remaining()))
            if first.get("type") != "order.snapshot":
                raise SmokeFailure(f"first socket message is not order.snapshot: {first}")
            snapshot = first["order"]
            status = snapshot["status"]
            say(f"socket: order.snapshot, status {status} (v{snapshot.get('status_version')})")
            while status != "confirmed":
                if status == "cancelled":
                    raise SmokeFailure(f"the order was cancelled: {snapshot.get('cancel_reason')}")
                try:
                    message = json.loads(socket.recv(timeout=remaining()))
                except TimeoutError:
                    remaining()  # raises the deadline's message
                    continue
                say(f"socket: {json.dumps(message)}")
                if message.get("type") == "order.status_changed":
                    status = message.get("status")
                    if status == "cancelled":
                        raise SmokeFailure(f"the order was cancelled: {message.get('reason')}")
    except (OSError, WebSocketException) as exc:
        raise SmokeFailure(f"socket {url.split('?')[0]}: {type(exc).__name__}: {exc}") from exc
    say("order confirmed by the worker")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:3000", help="The public API.")
    parser.add_argument("--email", default="customer@lokaly.test")
    parser.add_argument(
        "--password",
        default=os.environ.get("DEMO_PASSWORD") or "lokaly-demo-pass",
        help="Default: DEMO_PASSWORD or seed_demo's lokaly-demo-pass.",
    )
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="Seconds to wait for the confirmation."
    )
    args = parser.parse_args(argv)
    try:
        run(args.base_url, args.email, args.password, args.timeout)
    except SmokeFailure as exc:
        say(f"FAILED: {exc}")
        return 1
    except (KeyError, TypeError, ValueError) as exc:
        say(f"FAILED: unexpected answer shape: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
