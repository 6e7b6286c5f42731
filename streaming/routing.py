"""WebSocket routes (the live tabs arrive with the live-sections work)."""

from __future__ import annotations

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
