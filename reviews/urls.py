from __future__ import annotations

from django.urls import path

from littlewriter import converters  # noqa: F401 - registers <id:...> and <page:...>
from reviews import views

app_name = "reviews"

urlpatterns = [
    # The family: one of its books on its way to being shared.
    path("<id:book_id>/sharing/", views.sharing, name="sharing"),
    path("<id:book_id>/sharing/submit", views.submit, name="submit"),
    path("<id:book_id>/sharing/link", views.create_link, name="create_link"),
    path("<id:book_id>/sharing/link/revoke", views.revoke_link, name="revoke_link"),
    # Reviewers.
    path("review/", views.queue, name="queue"),
    path("review/<id:book_id>/", views.review, name="review"),
    path("review/<id:book_id>/pages/<page:number>/picture", views.review_picture, name="picture"),
    path("review/<id:book_id>/<slug:decision>", views.decide, name="decide"),
    # Anyone holding a share link.
    path("shared/<str:token>/", views.shared, name="shared"),
    path("shared/<str:token>/pages/<page:number>/picture", views.shared_picture, name="shared_picture"),
]
