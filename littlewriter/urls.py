from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from books import views as book_views
from littlewriter import accounts

urlpatterns = [
    path("", book_views.home, name="home"),
    path("admin/", admin.site.urls),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("children/", include("families.urls")),
    # The language switcher posts to set_language; the choice is kept in a cookie.
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("books.urls")),
    path("", include("reviews.urls")),
]
