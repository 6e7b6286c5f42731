"""Children's profiles: the pages, the family boundary, books made with a child, deleting a child.

Deleting a child is checked where its things really live: the database, the cache (the
database cache or Redis, listed key by key) and the picture store (the local media folder,
or the bucket listed through boto3), on whichever configuration the run uses.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.test import Client
from django.urls import reverse

from books import drafts, pictures, services
from books.adapters.offline_moderator import OfflineModerator
from books.domain import AgeBand, AlreadyGenerating, InvalidBook, Language
from books.drafts import GenerationLock
from books.models import Book, Page
from books.models import Character as CharacterRow
from books.ports import Picture, Verdict
from families import services as family_services
from families.models import Child
from reviews import services as review_services
from reviews.models import BookReview, Decision, ShareLink
from safety.models import ModerationFlag
from safety.services import UnkindInput
from streaming import live
from tests.conftest import USING_REDIS, USING_S3
from tests.people import first_child, make_parent
from tests.reviewing import make_reviewer
from usage.models import UsageRecord

# Deleting a child removes storage and cache entries after the commit: the tests need real commits.
pytestmark = pytest.mark.django_db(transaction=True)

CHARACTERS = [("Mina", "a girl with a red umbrella")]


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


def new_book_data(child: Any, characters: list[tuple[str, str]] = CHARACTERS) -> dict[str, Any]:
    data: dict[str, Any] = {
        "child": getattr(child, "pk", child),
        "characters-TOTAL_FORMS": "6",
        "characters-INITIAL_FORMS": "0",
        "characters-MIN_NUM_FORMS": "0",
        "characters-MAX_NUM_FORMS": "6",
        "page_count": 2,
        "language": "en",
    }
    for index, (name, description) in enumerate(characters):
        data[f"characters-{index}-name"] = name
        data[f"characters-{index}-description"] = description
    return data


def add_child(parent: Any, nickname: str, age_band: str = "6-8") -> Child:
    return family_services.add_child(parent_id=parent.pk, nickname=nickname, age_band=age_band)


def start(parent: Any, child: Child, pages: int = 2) -> Any:
    return services.start_book(
        user_id=parent.pk, child_id=child.pk, characters=CHARACTERS, page_count=pages, language="en"
    )


def make_pages(parent: Any, draft: Any, numbers: range) -> Any:
    for number in numbers:
        draft = async_to_sync(services.make_next_page)(
            user_id=parent.pk, draft_id=draft.draft_id, page_number=number, child_input=f"idea {number}"
        )
    return draft


def finished_book(parent: Any, child: Child, title: str) -> Book:
    draft = make_pages(parent, start(parent, child), range(1, 3))
    return services.finish_book(user_id=parent.pk, draft_id=draft.draft_id, title=title)


# -- where things are stored ---------------------------------------------------------------------


def stored_pictures(location: str) -> list[str]:
    """Every object in this test's picture store, by name: the bucket listed, or the folder walked."""
    if USING_S3:
        import boto3

        client = boto3.client("s3", endpoint_url=django_settings.S3_ENDPOINT_URL or None)
        listing = client.list_objects_v2(Bucket=django_settings.S3_BUCKET, Prefix=f"{location}/")
        return sorted(item["Key"].removeprefix(f"{location}/") for item in listing.get("Contents", []))
    root = Path(location)
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def stored_folders(location: str) -> list[str]:
    """Local folders left in the media folder (S3 has no folders, only keys)."""
    root = Path(location)
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_dir())


def cache_keys() -> list[str]:
    """Every key in the cache as stored (Redis keys, or database cache rows), and live snapshots."""
    if USING_REDIS:
        from django_redis import get_redis_connection

        return sorted(key.decode() for key in get_redis_connection("default").keys("*"))
    table = django_settings.CACHES["default"]["LOCATION"]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT cache_key FROM {connection.ops.quote_name(table)}")
        keys = [row[0] for row in cursor.fetchall()]
    return sorted(keys + [f"live:snapshot:{draft_id}" for draft_id in live._local_snapshots])


# -- the children's pages ------------------------------------------------------------------------


def test_children_page_lists_only_the_parents_own_children(
    parent_client: Client, parent: Any, other_parent: Any
) -> None:
    add_child(parent, "Pip", "3-5")
    add_child(other_parent, "Zed", "9-10")
    response = parent_client.get(reverse("families:children"))
    assert response.status_code == 200
    page = text_of(response)
    assert "Sunny" in page and "Pip" in page and "3–5 years" in page
    assert "Zed" not in page


def test_the_header_links_to_the_children(parent_client: Client) -> None:
    page = text_of(parent_client.get(reverse("books:mine")))
    assert f'href="{reverse("families:children")}"' in page


def test_adding_a_child(parent_client: Client, parent: Any) -> None:
    response = parent_client.post(reverse("families:add"), {"nickname": "  Pip ", "age_band": "3-5"})
    assert response.status_code == 302
    child = Child.objects.get(parent=parent, nickname="Pip")
    assert child.band is AgeBand.THREE_TO_FIVE


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        ({"nickname": "", "age_band": "3-5"}, "Give your child a nickname."),
        ({"nickname": "Pip", "age_band": ""}, "Choose your child's age."),
        ({"nickname": "Pip", "age_band": "11-12"}, "Select a valid choice."),
        ({"nickname": "P" * 41, "age_band": "3-5"}, "at most 40 characters"),
        ({"nickname": "sunny", "age_band": "3-5"}, "You already have a child called sunny."),
    ],
)
def test_a_bad_child_is_refused_keeping_what_was_typed(
    parent_client: Client, parent: Any, data: dict[str, str], sentence: str
) -> None:
    response = parent_client.post(reverse("families:add"), data)
    assert response.status_code == 400
    page = text_of(response)
    assert sentence in page
    if data["nickname"]:
        assert f'value="{data["nickname"]}"' in page
    assert Child.objects.filter(parent=parent).count() == 1  # only Sunny


def test_another_family_may_use_the_same_nickname(other_client: Client, other_parent: Any) -> None:
    response = other_client.post(reverse("families:add"), {"nickname": "Pip", "age_band": "6-8"})
    assert response.status_code == 302
    assert Child.objects.filter(nickname="Pip").count() == 1


def test_editing_a_child(parent_client: Client, parent: Any) -> None:
    child = first_child(parent)
    url = reverse("families:edit", args=[child.pk])
    assert 'value="Sunny"' in text_of(parent_client.get(url))
    response = parent_client.post(url, {"nickname": "Sunny Bee", "age_band": "9-10"})
    assert response.status_code == 302
    child.refresh_from_db()
    assert (child.nickname, child.band) == ("Sunny Bee", AgeBand.NINE_TO_TEN)


def test_saving_a_child_unchanged_is_not_a_duplicate(parent_client: Client, parent: Any) -> None:
    child = first_child(parent)
    response = parent_client.post(
        reverse("families:edit", args=[child.pk]), {"nickname": "Sunny", "age_band": "6-8"}
    )
    assert response.status_code == 302


@pytest.mark.parametrize("name", ["families:edit", "families:delete"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_another_familys_child_is_a_404_everywhere(
    other_client: Client, parent: Any, name: str, method: str
) -> None:
    child = first_child(parent)
    book = finished_book(parent, child, "Sunny's Book")
    data = {"nickname": "Taken", "age_band": "3-5"}
    response = getattr(other_client, method)(reverse(name, args=[child.pk]), data)
    assert response.status_code == 404
    child.refresh_from_db()
    assert child.nickname == "Sunny"
    assert Book.objects.filter(pk=book.pk).exists()


def test_a_child_that_does_not_exist_is_a_404(parent_client: Client) -> None:
    assert parent_client.get(reverse("families:edit", args=[999999])).status_code == 404


def test_the_services_refuse_another_familys_child(parent: Any, other_parent: Any) -> None:
    child = first_child(parent)
    with pytest.raises(family_services.ChildNotFound):
        family_services.change_child(
            parent_id=other_parent.pk, child_id=child.pk, nickname="X", age_band="3-5"
        )
    with pytest.raises(family_services.ChildNotFound):
        family_services.delete_child(parent_id=other_parent.pk, child_id=child.pk)
    assert Child.objects.filter(pk=child.pk, nickname="Sunny").exists()


def test_children_pages_need_a_login(client: Client, parent: Any) -> None:
    child = first_child(parent)
    for url in (
        reverse("families:children"),
        reverse("families:add"),
        reverse("families:edit", args=[child.pk]),
        reverse("families:delete", args=[child.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# -- a book is made with one child -----------------------------------------------------------------


def test_a_parent_without_children_is_asked_to_add_one_first() -> None:
    lone: Any = make_parent("cleo", child=None)
    client = Client()
    client.force_login(lone)
    page = text_of(client.get(reverse("books:new")))
    assert "First, who is making it with you?" in page
    assert 'name="characters-0-name"' not in page  # nothing to type (and lose) before the child
    response = client.post(
        reverse("families:add") + "?next=" + reverse("books:new"), {"nickname": "Pip", "age_band": "3-5"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("books:new")
    page = text_of(client.get(reverse("books:new")))
    assert 'name="characters-0-name"' in page
    assert "Pip (3–5 years)" in page
    pip = Child.objects.get(parent=lone)
    radio = re.search(rf'<input type="radio" name="child" value="{pip.pk}"[^>]*>', page)
    assert radio is not None and "checked" in radio.group(0)  # the only child, already chosen


def test_next_only_leads_back_to_the_new_book_page(parent_client: Client) -> None:
    response = parent_client.post(
        reverse("families:add") + "?next=https://example.com/", {"nickname": "Pip", "age_band": "3-5"}
    )
    assert response["Location"] == reverse("families:children")


def test_the_new_book_form_offers_only_the_parents_own_children(
    parent_client: Client, parent: Any, other_parent: Any
) -> None:
    add_child(parent, "Pip", "3-5")
    zed = add_child(other_parent, "Zed", "9-10")
    page = text_of(parent_client.get(reverse("books:new")))
    assert "Sunny (6–8 years)" in page and "Pip (3–5 years)" in page
    assert "Zed" not in page
    for theirs in (zed, first_child(other_parent)):
        assert f'value="{theirs.pk}"' not in page


def test_a_book_needs_a_child(parent_client: Client, parent: Any) -> None:
    response = parent_client.post(reverse("books:new"), new_book_data(child=""))
    assert response.status_code == 400
    page = text_of(response)
    assert "Choose the child this book is made with." in page
    assert 'value="Mina"' in page  # what was typed is kept
    assert drafts.current(parent.pk) is None


def test_a_book_cannot_be_started_with_another_familys_child(
    parent_client: Client, parent: Any, other_parent: Any
) -> None:
    response = parent_client.post(reverse("books:new"), new_book_data(child=first_child(other_parent)))
    assert response.status_code == 400
    page = text_of(response)
    assert "Choose one of your own children for this book." in page
    assert 'value="Mina"' in page
    assert drafts.current(parent.pk) is None


def test_start_book_refuses_another_familys_child(parent: Any, other_parent: Any) -> None:
    with pytest.raises(InvalidBook, match="your own children"):
        start(parent, first_child(other_parent))
    assert drafts.current(parent.pk) is None


def test_the_draft_keeps_the_child_and_its_age_band(parent_client: Client, parent: Any) -> None:
    pip = add_child(parent, "Pip", "3-5")
    response = parent_client.post(reverse("books:new"), new_book_data(child=pip))
    assert response.status_code == 302
    stored = cache.get(f"draft:user:{parent.pk}")
    assert stored["child_id"] == pip.pk and stored["age_band"] == "3-5"
    assert drafts.draft_ids_of_child(pip.pk) == [stored["draft_id"]]
    # A change of age later does not rewrite a book half-made.
    family_services.change_child(parent_id=parent.pk, child_id=pip.pk, nickname="Pip", age_band="9-10")
    draft = drafts.current(parent.pk)
    assert draft is not None and draft.age_band is AgeBand.THREE_TO_FIVE


def test_the_childs_name_shows_on_the_making_page_my_books_and_the_reader(
    parent_client: Client, parent: Any
) -> None:
    pip = add_child(parent, "Pip", "3-5")
    draft = make_pages(parent, start(parent, pip), range(1, 3))
    making = text_of(parent_client.get(reverse("books:draft", args=[draft.draft_id])))
    assert "Your book in progress with Pip" in making
    book = services.finish_book(user_id=parent.pk, draft_id=draft.draft_id, title="Pip's Day")
    assert book.child == pip
    assert "Made with Pip" in text_of(parent_client.get(reverse("books:mine")))
    assert "Made with Pip" in text_of(parent_client.get(book.get_absolute_url()))
    assert "made with Pip" in text_of(parent_client.get(book.get_absolute_url() + "?page=1"))


def test_an_old_draft_without_a_child_still_reads(parent: Any) -> None:
    draft = start(parent, first_child(parent))
    data = draft.to_dict()
    del data["child_id"], data["age_band"]
    cache.set(f"draft:user:{parent.pk}", data)
    old = drafts.current(parent.pk)
    assert old is not None and old.child_id is None and old.age_band is AgeBand.SIX_TO_EIGHT


# -- deleting a child with everything --------------------------------------------------------------


def a_family_with_books(parent: Any) -> dict[str, Any]:
    """Kit has a finished book; Sunny has one too, a book in progress and a stray redrawn picture."""
    sunny = first_child(parent)
    kit = add_child(parent, "Kit", "9-10")
    kits_book = finished_book(parent, kit, "Kit's Book")
    sunnys_book = finished_book(parent, sunny, "Sunny's Book")
    draft = make_pages(parent, start(parent, sunny, pages=3), range(1, 2))
    # A page drawn again leaves its first picture in the draft's folder until the daily purge.
    stray = pictures.save_draft_picture(draft_id=draft.draft_id, page_number=1, picture=Picture(b"\x89PNG"))
    return {
        "sunny": sunny,
        "kit": kit,
        "kits_book": kits_book,
        "sunnys_book": sunnys_book,
        "draft": draft,
        "stray": stray,
    }


def test_the_confirmation_says_what_will_go(parent_client: Client, parent: Any) -> None:
    family = a_family_with_books(parent)
    response = parent_client.get(reverse("families:delete", args=[family["sunny"].pk]))
    assert response.status_code == 200
    page = text_of(response)
    assert "Delete Sunny's profile?" in page
    assert "1 finished book" in page
    assert "1 book in progress" in page
    assert "3 pictures" in page  # two in the finished book, one kept in the book in progress
    assert Child.objects.filter(pk=family["sunny"].pk).exists()  # asking deletes nothing


def test_deleting_a_child_leaves_nothing_behind(
    parent_client: Client, parent: Any, picture_store: str
) -> None:
    family = a_family_with_books(parent)
    sunny, draft, sunnys_book, kits_book = (
        family["sunny"],
        family["draft"],
        family["sunnys_book"],
        family["kits_book"],
    )
    gone_draft_ids = [draft.draft_id, sunnys_book.draft_id]
    assert any(name.startswith(f"drafts/{draft.draft_id}/") for name in stored_pictures(picture_store))
    assert any(name.startswith(f"books/{sunnys_book.pk}/") for name in stored_pictures(picture_store))
    assert any(draft.draft_id in key for key in cache_keys())

    response = parent_client.post(reverse("families:delete", args=[sunny.pk]))

    assert response.status_code == 302 and response["Location"] == reverse("families:children")
    assert "Sunny's profile and 1 book were deleted." in text_of(parent_client.get(response["Location"]))
    # The database: the child, their book, its pages and characters.
    assert not Child.objects.filter(pk=sunny.pk).exists()
    assert not Book.objects.filter(pk=sunnys_book.pk).exists()
    assert not Page.objects.filter(book_id=sunnys_book.pk).exists()
    assert not CharacterRow.objects.filter(book_id=sunnys_book.pk).exists()
    # The picture store: only Kit's book is left.
    left = stored_pictures(picture_store)
    assert left and all(name.startswith(f"books/{kits_book.pk}/") for name in left)
    if not USING_S3:  # no emptied folder of Sunny's is left either
        folders = stored_folders(picture_store)
        assert f"books/{kits_book.pk}" in folders and f"books/{sunnys_book.pk}" not in folders
        assert not [folder for folder in folders if any(d in folder for d in gone_draft_ids)]
    # The cache: no draft, marker, snapshot, lock or per-child list of Sunny's is left.
    keys = cache_keys()
    for draft_id in gone_draft_ids:
        assert not [key for key in keys if draft_id in key]
    assert not [key for key in keys if key.endswith((f"draft:user:{parent.pk}", f"draft:child:{sunny.pk}"))]
    assert not [key for key in keys if f"draft:generating:{parent.pk}" in key]
    assert drafts.current(parent.pk) is None
    assert parent_client.get(reverse("books:draft", args=[draft.draft_id])).status_code == 404
    # Kit and Kit's book are untouched, and readable.
    assert Book.objects.get(pk=kits_book.pk).child == family["kit"]
    assert parent_client.get(reverse("books:book_picture", args=[kits_book.pk, 1])).status_code in (200, 302)
    assert drafts.draft_ids_of_child(family["kit"].pk) == [kits_book.draft_id]


def test_deleting_a_child_takes_their_flags_usage_and_reviews_too(parent: Any) -> None:
    """Rows kept by draft id outlive a plain delete of the books: a flag even holds the child's words."""
    family = a_family_with_books(parent)
    sunny, draft, sunnys_book, kits_book = (
        family["sunny"],
        family["draft"],
        family["sunnys_book"],
        family["kits_book"],
    )
    with pytest.raises(UnkindInput):
        async_to_sync(services.make_next_page)(
            user_id=parent.pk, draft_id=draft.draft_id, page_number=2, child_input="the troll kills the goat"
        )
    review_services.submit_for_review(book=sunnys_book, by=parent)
    review_services.approve(book=sunnys_book, reviewer=make_reviewer("rita"))
    review_services.create_share_link(book=sunnys_book, by=parent)
    gone_draft_ids = [draft.draft_id, sunnys_book.draft_id]
    assert ModerationFlag.objects.filter(draft_id=draft.draft_id, text="the troll kills the goat").exists()
    assert UsageRecord.objects.filter(draft_id=draft.draft_id, book__isnull=True).exists()
    assert UsageRecord.objects.filter(book=sunnys_book).exists()
    kits_usage = UsageRecord.objects.filter(book=kits_book).count()
    assert kits_usage

    family_services.delete_child(parent_id=parent.pk, child_id=sunny.pk)

    assert not ModerationFlag.objects.filter(draft_id__in=gone_draft_ids).exists()
    assert not ModerationFlag.objects.filter(text__contains="troll").exists()
    assert not UsageRecord.objects.filter(draft_id__in=gone_draft_ids).exists()
    assert not UsageRecord.objects.filter(book_id=sunnys_book.pk).exists()
    assert not BookReview.objects.filter(book_id=sunnys_book.pk).exists()
    assert not Decision.objects.exists()  # the reviewer decided on Sunny's book only
    assert not ShareLink.objects.filter(book_id=sunnys_book.pk).exists()
    # Kit's book keeps what it used.
    assert UsageRecord.objects.filter(book=kits_book).count() == kits_usage


def test_deleting_a_child_takes_the_flag_of_characters_refused_for_their_book(
    parent: Any, other_parent: Any
) -> None:
    """Refused characters leave no draft behind, only their flag: it still holds words about the child."""
    sunny, kit, bens_child = first_child(parent), add_child(parent, "Kit", "9-10"), first_child(other_parent)
    refused = [("Rex", "a dog who kills Sunny's cat")]
    for who, child, characters in (
        (parent, sunny, refused),
        (parent, kit, [("Max", "a bandit with a gun")]),
        (other_parent, bens_child, refused),
    ):
        with pytest.raises(UnkindInput):
            services.start_book(
                user_id=who.pk, child_id=child.pk, characters=characters, page_count=2, language="en"
            )
    assert ModerationFlag.objects.filter(user=parent, text__contains="kills Sunny's cat").exists()

    family_services.delete_child(parent_id=parent.pk, child_id=sunny.pk)

    assert not ModerationFlag.objects.filter(user=parent, text__contains="kills Sunny's cat").exists()
    # Kit's flag and the other family's (about their own Sunny) are theirs, and stay.
    assert ModerationFlag.objects.filter(user=parent, text__contains="a bandit with a gun").exists()
    assert ModerationFlag.objects.filter(user=other_parent, text__contains="kills Sunny's cat").exists()


class DeletesTheChildWhileChecking(OfflineModerator):
    """A check still under way when the parent deletes the child (in another request, really)."""

    child: tuple[int, int] = (0, 0)

    async def check(self, text: str, *, language: Language) -> Verdict:
        parent_id, child_id = self.child
        await sync_to_async(family_services.delete_child)(parent_id=parent_id, child_id=child_id)
        return await super().check(text, language=language)


@pytest.mark.django_db(transaction=True)
def test_a_child_deleted_while_their_words_are_checked_leaves_no_flag_and_no_error(
    parent: Any, settings: Any
) -> None:
    sunny = first_child(parent)
    DeletesTheChildWhileChecking.child = (parent.pk, sunny.pk)
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "MODERATOR": f"{__name__}.DeletesTheChildWhileChecking"}

    # The words are still refused with their sentence (a 4xx), not a foreign-key failure (a 500).
    with pytest.raises(UnkindInput):
        services.start_book(
            user_id=parent.pk,
            child_id=sunny.pk,
            characters=[("Rex", "a dog who kills Sunny's cat")],
            page_count=2,
            language="en",
        )

    assert not Child.objects.filter(pk=sunny.pk).exists()
    assert not ModerationFlag.objects.filter(user=parent).exists()  # nothing of the child is kept


def test_deleting_a_child_finds_a_put_away_draft_s_pictures(parent: Any, picture_store: str) -> None:
    """A draft that was put away (or expired) is no longer the current one; its folder still goes."""
    sunny = first_child(parent)
    draft = start(parent, sunny)
    pictures.save_draft_picture(draft_id=draft.draft_id, page_number=1, picture=Picture(b"\x89PNG"))
    services.discard_draft(user_id=parent.pk, draft_id=draft.draft_id)
    assert stored_pictures(picture_store)  # the redrawn picture was not part of the draft's pages

    family_services.delete_child(parent_id=parent.pk, child_id=sunny.pk)

    assert stored_pictures(picture_store) == []
    assert not [key for key in cache_keys() if draft.draft_id in key or f"draft:child:{sunny.pk}" in key]


def test_a_child_is_not_deleted_while_a_page_is_being_made(parent_client: Client, parent: Any) -> None:
    sunny = first_child(parent)
    draft = start(parent, sunny)
    lock = GenerationLock(parent.pk)
    lock.acquire()  # as a page run does
    try:
        response = parent_client.post(reverse("families:delete", args=[sunny.pk]))
    finally:
        lock.release()
    assert response.status_code == 409
    assert "A page is being made right now" in text_of(response)
    assert Child.objects.filter(pk=sunny.pk).exists()
    assert drafts.current(parent.pk) == draft


def test_no_book_is_started_with_a_child_while_the_family_is_locked(parent: Any) -> None:
    """Deleting a child holds the family's lock; a book started meanwhile waits its turn."""
    lock = GenerationLock(parent.pk)
    lock.acquire()
    try:
        with pytest.raises(AlreadyGenerating):
            start(parent, first_child(parent))
    finally:
        lock.release()
    assert drafts.current(parent.pk) is None
    assert drafts.draft_ids_of_child(first_child(parent).pk) == []
    assert start(parent, first_child(parent)).child_id == first_child(parent).pk


def test_a_failed_delete_leaves_everything_as_it_was(
    parent: Any, picture_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sunny = first_child(parent)
    book = finished_book(parent, sunny, "Sunny's Book")
    draft = start(parent, sunny)
    before = stored_pictures(picture_store)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("the database went away")

    monkeypatch.setattr(Child, "delete", refuse)
    with pytest.raises(DatabaseError):
        family_services.delete_child(parent_id=parent.pk, child_id=sunny.pk)

    # The book's rows were deleted inside the same transaction: rolled back with it.
    assert Book.objects.filter(pk=book.pk).count() == 1
    assert Page.objects.filter(book_id=book.pk).count() == 2
    assert stored_pictures(picture_store) == before
    assert drafts.current(parent.pk) == draft
    assert not GenerationLock.is_held(parent.pk)


# -- admin ------------------------------------------------------------------------------------------


def test_admin_lists_filters_and_searches_children(
    admin_client: Client, parent: Any, other_parent: Any
) -> None:
    add_child(parent, "Pip", "3-5")
    add_child(other_parent, "Zed", "9-10")
    changelist = reverse("admin:families_child_changelist")
    page = text_of(admin_client.get(changelist))
    assert "Pip" in page and "Zed" in page and "ada" in page
    filtered = text_of(admin_client.get(changelist, {"age_band__exact": "3-5"}))
    assert "Pip" in filtered and "Zed" not in filtered
    by_parent = text_of(admin_client.get(changelist, {"q": "ben"}))
    assert "Zed" in by_parent and "Pip" not in by_parent
    by_nickname = text_of(admin_client.get(changelist, {"q": "pip"}))
    assert "Pip" in by_nickname and "Zed" not in by_nickname


def test_admin_shows_children_on_their_parent(admin_client: Client, parent: Any) -> None:
    page = text_of(admin_client.get(reverse("admin:auth_user_change", args=[parent.pk])))
    assert 'value="Sunny"' in page


def test_deleting_a_child_in_admin_removes_their_pictures_too(
    admin_client: Client, parent: Any, picture_store: str
) -> None:
    sunny = first_child(parent)
    book = finished_book(parent, sunny, "Sunny's Book")
    assert stored_pictures(picture_store)
    response = admin_client.post(
        reverse("admin:families_child_changelist"),
        {"action": "delete_selected", "_selected_action": [sunny.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Child.objects.filter(pk=sunny.pk).exists()
    assert not Book.objects.filter(pk=book.pk).exists()
    assert stored_pictures(picture_store) == []
