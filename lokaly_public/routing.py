from django.urls import path, re_path

from lokaly_public.consumers import NoSuchRouteConsumer, OrderTrackingConsumer
from lokaly_public.ws_guard import HandshakeRateLimit

# Every route counts its handshakes in the client IP's rate limit: the order socket with
# its slot's claim (one Redis round trip, OrderTrackingConsumer.connect), any other
# through HandshakeRateLimit (tests/realtime/test_handshake_rate_limit.py tries each).
websocket_urlpatterns = [
    path("ws/orders/<uuid:order_id>/", OrderTrackingConsumer.as_asgi()),
    # An ASGI app, as Channels' URLRouter takes (django-stubs expects a view).
    re_path(r"^.*$", HandshakeRateLimit(NoSuchRouteConsumer.as_asgi())),  # type: ignore[arg-type]
]
