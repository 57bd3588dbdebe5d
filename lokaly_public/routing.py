from django.urls import path, re_path

from lokaly_public.consumers import NoSuchRouteConsumer, OrderTrackingConsumer

websocket_urlpatterns = [
    path("ws/orders/<uuid:order_id>/", OrderTrackingConsumer.as_asgi()),
    re_path(r"^.*$", NoSuchRouteConsumer.as_asgi()),
]
