"""LittleWriter settings: environment variables over embedded defaults.

With nothing set the app runs on SQLite, Django's database cache, local media, the
in-memory channel layer and the offline storyteller. ``DATABASE_URL``, ``REDIS_URL``,
``S3_BUCKET`` and ``OPENAI_API_KEY`` each switch one part to the real service. Every
variable is listed in the README with its default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from littlewriter.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("LW_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY when DJANGO_DEBUG is off.")
    SECRET_KEY = "littlewriter-development-key-not-for-production"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "books",
    "streaming",
    "usage",
    "safety",
    "reviews",
    "families",
]

# Django's own middleware, marked to run in the request's thread (littlewriter/middleware.py).
MIDDLEWARE = [
    "littlewriter.middleware.SecurityMiddleware",
    "littlewriter.middleware.SessionMiddleware",
    # After sessions, before common: picks the interface language (cookie, then Accept-Language).
    "littlewriter.middleware.LocaleMiddleware",
    "littlewriter.middleware.CommonMiddleware",
    "littlewriter.middleware.CsrfViewMiddleware",
    "littlewriter.middleware.AuthenticationMiddleware",
    "littlewriter.middleware.MessageMiddleware",
    "littlewriter.middleware.XFrameOptionsMiddleware",
    "littlewriter.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "littlewriter.urls"
ASGI_APPLICATION = "littlewriter.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# -- database -----------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'littlewriter.sqlite3'}")
# A request's thread is used again by later requests (``littlewriter.request_threads``), and
# so is its connection, for this many seconds; checked before use after a request's end.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("charset", "utf8mb4")
    DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Runs, heartbeats and page views write the cache table at once. A deferred transaction
    # that must upgrade to a write lock fails at once, and the database cache drops that write
    # silently (a kept page lost); IMMEDIATE takes the write lock up front and waits for it.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# -- cache (drafts, live snapshots) and channel layer ---------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
CACHES: dict[str, Any]
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("LW_CACHE_PREFIX", "lw"),
            "OPTIONS": {
                # Drafts are stored as JSON documents, never pickled objects.
                "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
                # redis-py's pool stops at 100 connections and raises instead of waiting.
                "CONNECTION_POOL_KWARGS": {"max_connections": 10000},
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("LW_CACHE_PREFIX", "lw")},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "littlewriter_cache",
            "KEY_PREFIX": env_str("LW_CACHE_PREFIX", "lw"),
            # Past MAX_ENTRIES Django culls a third of the table: live drafts and locks with it.
            "OPTIONS": {"MAX_ENTRIES": 1_000_000},
        }
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# -- pictures ---------------------------------------------------------------------------------
MEDIA_ROOT = Path(env_str("LW_MEDIA_ROOT", str(VAR_DIR / "media")))
# Pictures are never served straight from MEDIA_URL: a permission-checked view hands them out.
MEDIA_URL = "/media-not-served/"
S3_BUCKET = env_str("S3_BUCKET", "")
S3_ENDPOINT_URL = env_str("S3_ENDPOINT_URL", "")
S3_REGION = env_str("S3_REGION", "us-east-1")
S3_URL_SECONDS = env_int("S3_URL_SECONDS", 300)
STORAGES: dict[str, Any] = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": S3_ENDPOINT_URL or None,
            "region_name": S3_REGION,
            "default_acl": "private",
            "querystring_auth": True,
            "querystring_expire": S3_URL_SECONDS,
            "file_overwrite": True,
        },
    }

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"

# -- accounts -----------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if env_bool("LW_FAST_PASSWORD_HASHER", False):
    # For the test suite only: the default hasher is slow on purpose.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The interface's language; each book's story language is its own choice, independent of this.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ko", "한국어")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# -- the storyteller ------------------------------------------------------------------------------
OPENAI_API_KEY = env_str("OPENAI_API_KEY", "")
_storyteller = env_str("LW_STORYTELLER", "openai" if OPENAI_API_KEY else "offline")
_ADAPTERS = {
    "offline": (
        "books.adapters.offline.OfflineStoryWriter",
        "books.adapters.offline.OfflineQuestionWriter",
        "books.adapters.offline.OfflineIllustrator",
        "books.adapters.offline.OfflineWordExplainer",
    ),
    "openai": (
        "books.adapters.openai.OpenAIStoryWriter",
        "books.adapters.openai.OpenAIQuestionWriter",
        "books.adapters.openai.OpenAIIllustrator",
        "books.adapters.openai.OpenAIWordExplainer",
    ),
}
if _storyteller not in _ADAPTERS:
    raise ImproperlyConfigured(f"LW_STORYTELLER must be one of {sorted(_ADAPTERS)}, not {_storyteller!r}.")
if _storyteller == "openai" and not OPENAI_API_KEY:
    raise ImproperlyConfigured("LW_STORYTELLER=openai needs OPENAI_API_KEY.")
_story, _question, _illustrator, _words = _ADAPTERS[_storyteller]
_MODERATORS = {
    "offline": "books.adapters.offline_moderator.OfflineModerator",
    "openai": "books.adapters.openai_moderator.OpenAIModerator",
}

LITTLEWRITER: dict[str, Any] = {
    "STORY_WRITER": env_str("LW_STORY_WRITER", _story),
    "QUESTION_WRITER": env_str("LW_QUESTION_WRITER", _question),
    "ILLUSTRATOR": env_str("LW_ILLUSTRATOR", _illustrator),
    "WORD_EXPLAINER": env_str("LW_WORD_EXPLAINER", _words),
    # Reads every child's input before it is used and every generated text before it is shown.
    "MODERATOR": env_str("LW_MODERATOR", _MODERATORS[_storyteller]),
    "MODERATION_ATTEMPTS": env_int("LW_MODERATION_ATTEMPTS", 3),
    "MODERATION_BACKOFF_SECONDS": env_float("LW_MODERATION_BACKOFF", 0.5),
    "OPENAI_MODERATION_MODEL": env_str("LW_MODERATION_MODEL", "omni-moderation-latest"),
    "DRAFT_TTL_SECONDS": env_int("LW_DRAFT_TTL_HOURS", 72) * 3600,
    # A page still being made after this long is stopped and can be made again.
    "GENERATION_TIMEOUT_SECONDS": env_int("LW_GENERATION_TIMEOUT", 300),
    # Per user: generation requests a minute, and new pages a day (0 switches either off).
    "GENERATION_RATE_PER_MINUTE": env_int("LW_GENERATION_RATE", 10),
    "DAILY_PAGE_QUOTA": env_int("LW_DAILY_PAGE_QUOTA", 60),
    # Per server process: requests in threads at once, and page runs' sync calls at once; each
    # thread keeps up to one database connection (``littlewriter.request_threads``).
    "WORKER_THREADS": env_int("LW_WORKER_THREADS", 32),
    "RUN_THREADS": env_int("LW_RUN_THREADS", 16),
    "OPENAI_BASE_URL": env_str("OPENAI_BASE_URL", ""),
    "OPENAI_TEXT_MODEL": env_str("LW_TEXT_MODEL", "gpt-4o-mini"),
    "OPENAI_IMAGE_MODEL": env_str("LW_IMAGE_MODEL", "gpt-image-1"),
    "OPENAI_IMAGE_SIZE": env_str("LW_IMAGE_SIZE", "1024x1024"),
    "OPENAI_IMAGE_QUALITY": env_str("LW_IMAGE_QUALITY", "low"),
    "OPENAI_TIMEOUT_SECONDS": env_float("LW_OPENAI_TIMEOUT", 60.0),
    "OPENAI_MAX_RETRIES": env_int("LW_OPENAI_MAX_RETRIES", 2),
    # The SDK's HTTP layer: "aiohttp" (its openai[aiohttp] option, cheaper per chunk) or "httpx".
    "OPENAI_HTTP_CLIENT": env_choice("LW_OPENAI_HTTP", "aiohttp", ("aiohttp", "httpx")),
    # The Unicode TrueType font embedded in book PDFs (Hangul and Latin); Debian's fonts-nanum.
    "PDF_FONT": env_str("LW_PDF_FONT", "/usr/share/fonts/truetype/nanum/NanumGothic.ttf"),
    "PDF_BOLD_FONT": env_str("LW_PDF_BOLD_FONT", "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "books": {"handlers": ["console"], "level": env_str("LW_LOG_LEVEL", "INFO")},
        "streaming": {"handlers": ["console"], "level": env_str("LW_LOG_LEVEL", "INFO")},
        # The OpenAI SDK's HTTP client logs every request it makes at INFO (about eight a page,
        # 1,279 lines in one 50-book bench run); a request that fails reaches our own log lines.
        "httpx2": {"level": "WARNING"},
    },
}
