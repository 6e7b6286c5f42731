from __future__ import annotations

from django.urls import path

from books import views
from littlewriter import converters  # noqa: F401 - registers <id:...> and <page:...>

app_name = "books"

urlpatterns = [
    path("new/", views.new_book, name="new"),
    path("mine/", views.my_books, name="mine"),
    path("drafts/<str:draft_id>/", views.draft_page, name="draft"),
    path("drafts/<str:draft_id>/pages/<page:number>/make", views.make_page, name="make_page"),
    path("drafts/<str:draft_id>/pages/<page:number>/write", views.write_page, name="write_page"),
    path("drafts/<str:draft_id>/pages/<page:number>/edit", views.edit_page, name="edit_page"),
    path("drafts/<str:draft_id>/pages/<page:number>/picture", views.draft_picture, name="draft_picture"),
    path("drafts/<str:draft_id>/retry", views.retry_sections, name="retry"),
    path("drafts/<str:draft_id>/stop", views.stop_page, name="stop"),
    path("drafts/<str:draft_id>/pictures/<str:filename>", views.live_picture, name="live_picture"),
    path("drafts/<str:draft_id>/finish", views.finish, name="finish"),
    path("drafts/<str:draft_id>/discard", views.discard, name="discard"),
    path("<id:book_id>/", views.read_book, name="read"),
    path("<id:book_id>/book.pdf", views.book_pdf, name="pdf"),
    path("<id:book_id>/pages/<page:number>/picture", views.book_picture, name="book_picture"),
]
