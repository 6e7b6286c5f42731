from __future__ import annotations

from django.urls import path

from families import views

app_name = "families"

urlpatterns = [
    path("", views.children, name="children"),
    path("add/", views.add_child, name="add"),
    path("<int:child_id>/edit/", views.edit_child, name="edit"),
    path("<int:child_id>/delete/", views.delete_child, name="delete"),
]
