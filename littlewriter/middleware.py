"""Django's middleware, marked sync-only so that an async handler runs it in one thread trip.

The server's handler (``littlewriter.request_threads``) builds the sync chain, as WSGI does,
and runs it whole in the request's thread; there the marking changes nothing. It matters to
handlers that build the async chain, such as the test suite's ``AsyncClient``: an
async-capable ``MiddlewareMixin`` middleware would call each of its sync hooks through
``sync_to_async`` (about fourteen trips between the event loop and the request's thread for
these nine), while sync-only ones run in the thread after one trip
(``BaseHandler.load_middleware``). Behaviour is unchanged: these are the same classes, told
to take Django's other supported path.
"""

from __future__ import annotations

from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Messages
from django.contrib.sessions.middleware import SessionMiddleware as _Sessions
from django.middleware.clickjacking import XFrameOptionsMiddleware as _XFrameOptions
from django.middleware.common import CommonMiddleware as _Common
from django.middleware.csrf import CsrfViewMiddleware as _Csrf
from django.middleware.locale import LocaleMiddleware as _Locale
from django.middleware.security import SecurityMiddleware as _Security
from django_htmx.middleware import HtmxMiddleware as _Htmx


class _InTheRequestThread:
    sync_capable = True
    async_capable = False


class SecurityMiddleware(_InTheRequestThread, _Security):
    pass


class SessionMiddleware(_InTheRequestThread, _Sessions):
    pass


class LocaleMiddleware(_InTheRequestThread, _Locale):
    pass


class CommonMiddleware(_InTheRequestThread, _Common):
    pass


class CsrfViewMiddleware(_InTheRequestThread, _Csrf):
    pass


class AuthenticationMiddleware(_InTheRequestThread, _Authentication):
    pass


class MessageMiddleware(_InTheRequestThread, _Messages):
    pass


class XFrameOptionsMiddleware(_InTheRequestThread, _XFrameOptions):
    pass


class HtmxMiddleware(_InTheRequestThread, _Htmx):
    pass
