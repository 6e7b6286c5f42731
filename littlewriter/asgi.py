"""ASGI entry point: HTTP through Django, WebSockets through Channels (served by Daphne)."""

from __future__ import annotations

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "littlewriter.settings")
# Django must be set up before anything imports models (the consumers do).
django.setup(set_prefix=False)

from littlewriter.request_threads import PooledThreadsASGIHandler  # noqa: E402

# ``get_asgi_application()`` does the same set-up and returns Django's own ``ASGIHandler``;
# this one differs in where and in how many trips each request's sync code runs (its module).
django_asgi_app = PooledThreadsASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402

from streaming.routing import websocket_urlpatterns  # noqa: E402

http_app: ASGIHandler = django_asgi_app
if settings.DEBUG:
    # Daphne does not serve static files; in development the app does (vendored htmx included).
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    http_app = ASGIStaticFilesHandler(django_asgi_app)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded by now (Django, the app, its adapters and the OpenAI SDK: about 150,000
# objects) lives as long as the process. Frozen, it is left out of the garbage collector's
# full collections, each of which stops every page and socket of the process: at 50 live
# books they took 63-122 ms (two a run), and 27-34 ms frozen (one a run; bench/README.md).
gc.freeze()
