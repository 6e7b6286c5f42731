from __future__ import annotations

from django.urls import path

from reviews import views

app_name = "reviews"

urlpatterns = [
    # The family: one of its books on its way to being shared.
    path("<int:book_id>/sharing/", views.sharing, name="sharing"),
    path("<int:book_id>/sharing/submit", views.submit, name="submit"),
    path("<int:book_id>/sharing/link", views.create_link, name="create_link"),
    path("<int:book_id>/sharing/link/revoke", views.revoke_link, name="revoke_link"),
    # Reviewers.
    path("review/", views.queue, name="queue"),
    path("review/<int:book_id>/", views.review, name="review"),
    path("review/<int:book_id>/pages/<int:number>/picture", views.review_picture, name="picture"),
    path("review/<int:book_id>/<slug:decision>", views.decide, name="decide"),
    # Anyone holding a share link.
    path("shared/<str:token>/", views.shared, name="shared"),
    path("shared/<str:token>/pages/<int:number>/picture", views.shared_picture, name="shared_picture"),
]
