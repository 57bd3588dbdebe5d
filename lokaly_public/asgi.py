"""The public server's ASGI application: HTTP (DRF) and WebSockets (Channels) on one port.

HTTP goes either to Django's WSGI handler in a thread pool (``PUBLIC_HTTP_STACK=wsgi``,
the default: measured faster for synchronous DRF views, docs/performance.md), one thread
hop per request (``lokaly_public.wsgi_bridge``), or to Django's ASGI handler (``asgi``).
Socket handshakes count against the client IP's rate limit on every route
(``lokaly_public.routing``, ``lokaly_public.ws_guard``).
"""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lokaly_public.settings.base")
django_asgi = get_asgi_application()  # sets Django up before the imports below

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from lokaly_public.routing import websocket_urlpatterns  # noqa: E402
from lokaly_public.wsgi_bridge import OneHopWSGI  # noqa: E402

http_app: Any
if settings.PUBLIC_HTTP_STACK == "wsgi":
    http_app = OneHopWSGI(
        get_wsgi_application(),
        workers=settings.PUBLIC_HTTP_THREADS,
        max_body=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
    )
else:
    http_app = django_asgi

application = ProtocolTypeRouter(
    {
        "http": http_app,
        # Django's middleware does not run for sockets: each route counts its handshakes
        # in the IP's rate limit itself (lokaly_public.routing).
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
