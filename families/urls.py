from __future__ import annotations

from django.urls import path

from families import views
from littlewriter import converters  # noqa: F401 - registers <id:...> and <page:...>

app_name = "families"

urlpatterns = [
    path("", views.children, name="children"),
    path("add/", views.add_child, name="add"),
    path("<id:child_id>/edit/", views.edit_child, name="edit"),
    path("<id:child_id>/delete/", views.delete_child, name="delete"),
]
