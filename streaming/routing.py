"""WebSocket routes: one socket per browser tab watching a book's page being made."""

from __future__ import annotations

from django.urls import path

from streaming.consumers import PageConsumer

websocket_urlpatterns = [
    path("ws/drafts/<str:draft_id>/", PageConsumer.as_asgi()),
]
