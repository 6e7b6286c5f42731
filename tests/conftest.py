"""Shared fixtures: named parents, an isolated picture store, a clean cache."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import Client

from tests.fake_openai import fake_openai  # noqa: F401 - a fixture for every module
from tests.people import make_parent

USING_S3 = bool(django_settings.S3_BUCKET)
USING_REDIS = bool(django_settings.REDIS_URL)


def pytest_report_header() -> list[str]:
    return [
        f"littlewriter: database={django_settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"
        f" cache={'redis' if USING_REDIS else 'database'} storage={'s3' if USING_S3 else 'local'}"
    ]


@pytest.fixture(scope="session", autouse=True)
def s3_bucket() -> Iterator[None]:
    """On the S3 configuration, the bucket the tests write into (a moto server on loopback)."""
    if USING_S3:
        import boto3

        client = boto3.client("s3", endpoint_url=django_settings.S3_ENDPOINT_URL or None)
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if django_settings.S3_BUCKET not in existing:
            client.create_bucket(Bucket=django_settings.S3_BUCKET)
    yield


@pytest.fixture(autouse=True)
def picture_store(settings: Any, tmp_path: Any) -> Any:
    """Every test gets pictures of its own: a temporary folder, or its own prefix in the bucket."""
    storages = {**settings.STORAGES}
    default = {**storages["default"], "OPTIONS": {**storages["default"]["OPTIONS"]}}
    if USING_S3:
        default["OPTIONS"]["location"] = f"test-{uuid.uuid4().hex[:12]}"
    else:
        default["OPTIONS"]["location"] = str(tmp_path / "media")
    storages["default"] = default
    settings.STORAGES = storages
    return default["OPTIONS"]["location"]


@pytest.fixture(autouse=True)
def offline_storyteller(settings: Any) -> None:
    """Tests use the offline storyteller unless they point the adapters elsewhere themselves."""
    settings.LITTLEWRITER = {
        **settings.LITTLEWRITER,
        "STORY_WRITER": "books.adapters.offline.OfflineStoryWriter",
        "QUESTION_WRITER": "books.adapters.offline.OfflineQuestionWriter",
        "ILLUSTRATOR": "books.adapters.offline.OfflineIllustrator",
        "WORD_EXPLAINER": "books.adapters.offline.OfflineWordExplainer",
        "MODERATOR": "books.adapters.offline_moderator.OfflineModerator",
        # A moderator that is down is retried; tests need not wait long for it.
        "MODERATION_BACKOFF_SECONDS": 0.01,
    }


@pytest.fixture(autouse=True)
def clean_cache(request: pytest.FixtureRequest, django_db_blocker: Any) -> Iterator[None]:
    """Drafts live in the cache, which neither transaction rollback nor flush empties for us."""
    yield
    uses_db = {"db", "transactional_db", "django_db_setup"} & set(
        request.fixturenames
    ) or request.node.get_closest_marker("django_db")
    if USING_REDIS or uses_db:
        with django_db_blocker.unblock():
            cache.clear()


@pytest.fixture
def parent(db: None) -> Any:
    return make_parent("ada")


@pytest.fixture
def other_parent(db: None) -> Any:
    return make_parent("ben")


@pytest.fixture
def parent_client(parent: Any) -> Client:
    client = Client()
    client.force_login(parent)
    return client


@pytest.fixture
def other_client(other_parent: Any) -> Client:
    client = Client()
    client.force_login(other_parent)
    return client
