"""A scripted run against a running Lokaly (``make dev``): an order from placement to the door.

As the seed_demo accounts: the customer lists the stores and the first store's products,
orders two units of one product and one of another (both in stock) and watches the order
on the WebSocket; the worker confirms it and assigns a demo courier. An admin starts
picking (admin API) and finds a short pick (contract v1.1): the first line is one unit
short, the second is not on the shelf and a third product is proposed as its substitute.
The customer's socket gets ``order.substitution_proposed``, the customer accepts it over
the public API, the admin completes picking, and the socket gets ``order.amended`` (the
totals the line prices say) before the status change to ``ready``. The courier sends a
location, picks the order up (the bag as amended: the short line's picked unit and the
substitute) and completes the delivery. The socket must show every
status change once, in order, and a ``courier.location``; the store's available stock
must end exactly one unit down for the short line and the substitute, unchanged for the
line not found. ``--picking plain`` picks everything instead (the v1 flow).
Exits 0 on success, 1 otherwise.

    .venv/bin/python devtools/smoke.py [--until confirmed|delivered] [--picking short|plain]
                                       [--timeout 30]
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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Plan:
    """The order the smoke test places and how its picking goes (a short pick)."""

    store_id: str
    short: dict[str, Any]  # ordered 2, picked 1
    missing: dict[str, Any]  # ordered 1, picked 0, replaced by ``substitute``
    substitute: dict[str, Any]  # not on the order; 1 unit proposed and accepted
    available: dict[str, int]  # product id -> available_quantity before the order

    SHORT_ORDERED = 2
    SHORT_PICKED = 1


def available_stock(api: Api, store_id: str) -> dict[str, int]:
    products = api.call("GET", f"/api/stores/{store_id}/products?page_size=100")["results"]
    return {p["id"]: p["available_quantity"] for p in products}


def place_order(api: Api) -> tuple[dict[str, Any], Plan]:
    stores = api.call("GET", "/api/stores")["results"]
    if not stores:
        raise SmokeFailure("GET /api/stores: no stores (did seed_demo run?)")
    store = stores[0]
    say(f"{len(stores)} store(s); using {store.get('name')!r} ({store['id']})")

    products = api.call("GET", f"/api/stores/{store['id']}/products?page_size=100")["results"]
    in_stock = [p for p in products if p.get("available_quantity", 0) >= Plan.SHORT_ORDERED]
    if len(in_stock) < 3:
        raise SmokeFailure(
            f"store {store['id']} has fewer than 3 products with {Plan.SHORT_ORDERED}+ units "
            f"available ({len(products)} listed; run seed_demo again?)"
        )
    currency = in_stock[0]["currency"]
    same_currency = [p for p in in_stock if p["currency"] == currency]
    if len(same_currency) < 3:
        raise SmokeFailure(f"store {store['id']} has fewer than 3 {currency} products in stock")
    short, missing, substitute = same_currency[:3]
    plan = Plan(
        store_id=store["id"],
        short=short,
        missing=missing,
        substitute=substitute,
        available={p["id"]: p["available_quantity"] for p in products},
    )
    say(
        f"{len(products)} product(s); ordering {Plan.SHORT_ORDERED} x {short['name']!r} "
        f"and 1 x {missing['name']!r}"
    )
    order = api.call(
        "POST",
        "/api/orders",
        {
            "store_id": store["id"],
            "items": [
                {"product_id": short["id"], "quantity": Plan.SHORT_ORDERED},
                {"product_id": missing["id"], "quantity": 1},
            ],
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
    expected_subtotal = Plan.SHORT_ORDERED * short["price_cents"] + missing["price_cents"]
    if order.get("subtotal_cents") != expected_subtotal:
        raise SmokeFailure(
            f"POST /api/orders: subtotal {order.get('subtotal_cents')}, the prices say "
            f"{expected_subtotal}"
        )
    say(
        f"order {order.get('number')} ({order['id']}) created: pending, "
        f"total {order.get('total_cents')} {order.get('currency')}"
    )
    return order, plan


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
    order, plan = place_order(customer)
    watcher = Watcher(args.base_url, order["id"], customer.token or "", args.timeout)
    try:
        watcher.wait_status("confirmed", deadline)
        say("order confirmed by the worker")
        if args.until == "confirmed":
            say(f"OK in {time.monotonic() - started:.1f} s")
            return
        deliver(args, customer, order, plan, watcher, deadline)
    finally:
        watcher.close()
    check_history(watcher.messages)
    if args.picking == "short":
        check_stock(customer, plan, "after delivery")
    notifications = customer.call("GET", "/api/notifications")["results"]
    types = sorted(n["type"] for n in notifications if n.get("order_id") == order["id"])
    say(f"customer notifications for the order: {types}")
    say(f"OK in {time.monotonic() - started:.1f} s")


def deliver(
    args: argparse.Namespace,
    customer: Api,
    order: dict[str, Any],
    plan: Plan,
    watcher: Watcher,
    deadline: float,
) -> None:
    """Staff pick the order (a short pick, unless --picking plain), the assigned courier
    takes it to the door."""
    admin = Api(args.admin_url)
    login(admin, "/api/admin/auth/token", args.admin_email, args.password)
    courier, delivery = find_courier(args.base_url, order["id"], args.password, deadline)
    say(f"delivery {delivery['id']} assigned")
    admin.call("POST", f"/api/admin/orders/{order['id']}/picking/start")
    watcher.wait_status("picking", deadline)
    if args.picking == "short":
        short_pick(admin, customer, order, plan, watcher, deadline)
    else:
        admin.call("POST", f"/api/admin/orders/{order['id']}/picking/complete")
        watcher.wait_status("ready", deadline)
    courier.call("POST", "/api/courier/location", {"lat": 52.3731, "lng": 4.8922}, expect=204)
    watcher.wait_for(
        "a courier.location message",
        lambda: any(m.get("type") == "courier.location" for m in watcher.messages),
        deadline,
    )
    picked_up = courier.call("POST", f"/api/courier/deliveries/{delivery['id']}/pickup")
    if args.picking == "short":
        bag = sorted((i.get("name"), i.get("quantity")) for i in picked_up.get("items", []))
        expected = sorted([(plan.short["name"], Plan.SHORT_PICKED), (plan.substitute["name"], 1)])
        if bag != expected:
            raise SmokeFailure(f"the courier's bag {bag}, the amended order says {expected}")
        say("the courier carries the amended bag")
    watcher.wait_status("out_for_delivery", deadline)
    courier.call("POST", f"/api/courier/deliveries/{delivery['id']}/complete")
    watcher.wait_status("delivered", deadline)
    say("order delivered")


def short_pick(
    admin: Api,
    customer: Api,
    order: dict[str, Any],
    plan: Plan,
    watcher: Watcher,
    deadline: float,
) -> None:
    """One line short, one not found and replaced by a substitute the customer accepts;
    the amendment reaches the socket before ``ready`` with the totals the prices say."""
    order_id = order["id"]
    short, missing, substitute = plan.short, plan.missing, plan.substitute
    lines_path = f"/api/admin/orders/{order_id}/picking/lines"

    picking = admin.call(
        "POST",
        f"{lines_path}/{short['id']}",
        {"picked_quantity": Plan.SHORT_PICKED, "substitute": None},
    )
    line = picking_line(picking, short["id"])
    if (line.get("ordered_quantity"), line.get("picked_quantity"), line.get("substitute")) != (
        Plan.SHORT_ORDERED,
        Plan.SHORT_PICKED,
        None,
    ):
        raise SmokeFailure(f"recording the short line: unexpected line {line}")
    say(f"picked {Plan.SHORT_PICKED} of {Plan.SHORT_ORDERED} x {short['name']!r}")

    picking = admin.call(
        "POST",
        f"{lines_path}/{missing['id']}",
        {"picked_quantity": 0, "substitute": {"product_id": substitute["id"], "quantity": 1}},
    )
    proposal = picking_line(picking, missing["id"]).get("substitute") or {}
    if (
        proposal.get("product_id"),
        proposal.get("quantity"),
        proposal.get("unit_price_cents"),
        proposal.get("status"),
    ) != (substitute["id"], 1, substitute["price_cents"], "proposed"):
        raise SmokeFailure(f"proposing the substitute: unexpected substitute {proposal}")
    say(f"{missing['name']!r} not found; proposed 1 x {substitute['name']!r} instead")

    def proposed() -> dict[str, Any] | None:
        return next(
            (
                m
                for m in watcher.messages
                if m.get("type") == "order.substitution_proposed"
                and m.get("product_id") == missing["id"]
            ),
            None,
        )

    watcher.wait_for("order.substitution_proposed", lambda: proposed() is not None, deadline)
    message = proposed() or {}
    offered = message.get("substitute") or {}
    if (
        message.get("order_id"),
        offered.get("product_id"),
        offered.get("name"),
        offered.get("quantity"),
        offered.get("unit_price_cents"),
    ) != (order_id, substitute["id"], substitute["name"], 1, substitute["price_cents"]) or not (
        message.get("expires_at")
    ):
        raise SmokeFailure(f"order.substitution_proposed: unexpected message {message}")

    answered = customer.call(
        "POST", f"/api/orders/{order_id}/substitutions/{missing['id']}", {"accept": True}
    )
    statuses = {s["product_id"]: s["status"] for s in answered.get("substitutions", [])}
    if statuses != {missing["id"]: "accepted"}:
        raise SmokeFailure(f"after accepting: substitutions {answered.get('substitutions')}")
    say("the customer accepted the substitute")
    check_stock(
        customer,
        plan,
        "with the substitute reserved",
        {short["id"]: -Plan.SHORT_ORDERED, missing["id"]: -1, substitute["id"]: -1},
    )

    admin.call("POST", f"/api/admin/orders/{order_id}/picking/complete")
    watcher.wait_status("ready", deadline)
    types = [m.get("type") for m in watcher.messages]
    ready_at = next(
        i
        for i, m in enumerate(watcher.messages)
        if m.get("type") == "order.status_changed" and m.get("status") == "ready"
    )
    if "order.amended" not in types[:ready_at]:
        raise SmokeFailure(f"no order.amended before the status change to ready: {types}")
    amended = watcher.messages[types.index("order.amended")]
    expected_items = {
        (short["id"], Plan.SHORT_ORDERED, Plan.SHORT_PICKED, None, short["price_cents"]),
        (missing["id"], 1, 0, None, 0),
        (substitute["id"], 1, 1, missing["id"], substitute["price_cents"]),
    }
    items = {
        (
            i.get("product_id"),
            i.get("quantity"),
            i.get("picked_quantity"),
            i.get("substitute_for"),
            i.get("line_total_cents"),
        )
        for i in amended.get("items", [])
    }
    if items != expected_items:
        raise SmokeFailure(
            f"order.amended items (product, quantity, picked, substitute_for, line total) "
            f"{sorted(items, key=str)}, expected {sorted(expected_items, key=str)}"
        )
    subtotal = Plan.SHORT_PICKED * short["price_cents"] + substitute["price_cents"]
    total = subtotal + order["delivery_fee_cents"]
    got = (amended.get("order_id"), amended.get("subtotal_cents"), amended.get("total_cents"))
    if got != (order_id, subtotal, total):
        raise SmokeFailure(
            f"order.amended (order, subtotal, total) {got}, the prices say "
            f"{(order_id, subtotal, total)}"
        )
    current = customer.call("GET", f"/api/orders/{order_id}")
    if (current.get("subtotal_cents"), current.get("total_cents")) != (subtotal, total):
        raise SmokeFailure(
            f"GET /api/orders/{order_id}: subtotal {current.get('subtotal_cents')}, total "
            f"{current.get('total_cents')}; amended to {subtotal}, {total}"
        )
    say(
        f"order amended before ready: total {order['total_cents']} -> {total} "
        f"{order.get('currency')}"
    )
    check_stock(
        customer,
        plan,
        "when ready",
        {short["id"]: -Plan.SHORT_PICKED, missing["id"]: 0, substitute["id"]: -1},
    )


def picking_line(picking: Any, product_id: str) -> dict[str, Any]:
    lines = picking.get("lines") if isinstance(picking, dict) else None
    line = next((x for x in lines or [] if x.get("product_id") == product_id), None)
    if line is None:
        raise SmokeFailure(f"the picking has no line for product {product_id}: {picking}")
    return line


def check_stock(
    customer: Api, plan: Plan, when: str, changes: dict[str, int] | None = None
) -> None:
    """Available units of the three products against the figures before the order (the
    smoke test expects nobody else to order at the store meanwhile)."""
    if changes is None:  # delivered: the picked units left the store
        changes = {
            plan.short["id"]: -Plan.SHORT_PICKED,
            plan.missing["id"]: 0,
            plan.substitute["id"]: -1,
        }
    now = available_stock(customer, plan.store_id)
    got = {pid: now.get(pid, 0) - plan.available[pid] for pid in changes}
    if got != changes:
        names = {p["id"]: p["name"] for p in (plan.short, plan.missing, plan.substitute)}
        raise SmokeFailure(
            f"available stock {when}: changes "
            f"{ {names[k]: v for k, v in got.items()} }, expected "
            f"{ {names[k]: v for k, v in changes.items()} }"
        )
    say(f"available stock {when} as expected")


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
        "--picking",
        choices=["short", "plain"],
        default="short",
        help=(
            "short (default): one line short and one replaced by an accepted substitute "
            "(contract v1.1); plain: everything found, as in v1."
        ),
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
