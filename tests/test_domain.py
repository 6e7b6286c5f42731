"""The book's rules, without a database or Django."""

from __future__ import annotations

import pytest

from books.domain import (
    MAX_CHILD_INPUT_LENGTH,
    MAX_PAGES,
    AlreadyGenerating,
    BookDraft,
    BookState,
    Character,
    DraftPage,
    IllegalMove,
    InvalidBook,
    Language,
    PageSource,
)

HEROES = [Character.create("Mina", "a girl with a red umbrella"), Character.create("Bori", "a sleepy cat")]


def a_book(pages: int = 3) -> BookDraft:
    draft = BookDraft.begin(draft_id="d1", owner_id=7)
    draft.set_up(characters=HEROES, page_count=pages, language=Language.ENGLISH)
    return draft


def make(draft: BookDraft, number: int, text: str = "Text.") -> None:
    draft.begin_page(page_number=number, child_input="they find a door")
    draft.complete_page(DraftPage(number, text, "What next?", f"p{number}.png", "they find a door"))


def test_a_new_book_waits_for_its_characters() -> None:
    draft = BookDraft.begin(draft_id="d1", owner_id=7)
    assert draft.state is BookState.INIT
    with pytest.raises(IllegalMove, match="characters"):
        draft.begin_page(page_number=1, child_input="hello")


def test_set_up_moves_to_in_progress() -> None:
    draft = a_book()
    assert draft.state is BookState.IN_PROGRESS
    assert draft.next_page_number == 1


def test_set_up_only_once() -> None:
    draft = a_book()
    with pytest.raises(IllegalMove):
        draft.set_up(characters=HEROES, page_count=3, language=Language.ENGLISH)


@pytest.mark.parametrize("count", [0, 7])
def test_a_book_has_one_to_six_characters(count: int) -> None:
    draft = BookDraft.begin(draft_id="d1", owner_id=7)
    people = [Character.create(f"Name{i}", "") for i in range(count)]
    with pytest.raises(InvalidBook, match="between 1 and 6 characters"):
        draft.set_up(characters=people, page_count=3, language=Language.ENGLISH)


def test_character_names_must_differ() -> None:
    draft = BookDraft.begin(draft_id="d1", owner_id=7)
    with pytest.raises(InvalidBook, match="same name"):
        draft.set_up(
            characters=[Character.create("Mina", ""), Character.create("mina", "")],
            page_count=3,
            language=Language.ENGLISH,
        )


@pytest.mark.parametrize(
    ("name", "description", "message"),
    [("", "x", "needs a name"), ("N" * 41, "", "at most 40"), ("Mina", "d" * 201, "at most 200")],
)
def test_character_rules(name: str, description: str, message: str) -> None:
    with pytest.raises(InvalidBook, match=message):
        Character.create(name, description)


def test_character_is_trimmed() -> None:
    assert Character.create("  Mina ", " brave ") == Character("Mina", "brave")


@pytest.mark.parametrize("pages", [1, MAX_PAGES + 1])
def test_page_count_is_bounded(pages: int) -> None:
    draft = BookDraft.begin(draft_id="d1", owner_id=7)
    with pytest.raises(InvalidBook, match="between 2 and 16 pages"):
        draft.set_up(characters=HEROES, page_count=pages, language=Language.ENGLISH)


def test_unknown_language_is_refused() -> None:
    draft = BookDraft.begin(draft_id="d1", owner_id=7)
    with pytest.raises(ValueError):
        draft.set_up(characters=HEROES, page_count=3, language="fr")  # type: ignore[arg-type]


def test_begin_page_goes_generating_and_keeps_the_input() -> None:
    draft = a_book()
    cleaned = draft.begin_page(page_number=1, child_input="  a dragon sneezes  ")
    assert cleaned == "a dragon sneezes"
    assert draft.state is BookState.GENERATING
    assert draft.pending_input == "a dragon sneezes"


@pytest.mark.parametrize("child_input", ["", "   ", "x" * (MAX_CHILD_INPUT_LENGTH + 1)])
def test_child_input_is_one_to_300_characters(child_input: str) -> None:
    draft = a_book()
    with pytest.raises(InvalidBook):
        draft.begin_page(page_number=1, child_input=child_input)
    assert draft.state is BookState.IN_PROGRESS


def test_only_the_next_page_can_be_made() -> None:
    draft = a_book()
    with pytest.raises(IllegalMove, match="next page of this book is page 1"):
        draft.begin_page(page_number=2, child_input="hello")


def test_a_second_page_while_generating_is_refused() -> None:
    draft = a_book()
    draft.begin_page(page_number=1, child_input="hello")
    with pytest.raises(AlreadyGenerating):
        draft.begin_page(page_number=1, child_input="hello again")
    assert draft.pending_input == "hello"


def test_completing_pages_returns_to_in_progress_then_done() -> None:
    draft = a_book(pages=2)
    make(draft, 1)
    assert draft.state is BookState.IN_PROGRESS
    assert draft.current_question == "What next?"
    make(draft, 2)
    assert draft.state is BookState.DONE
    with pytest.raises(IllegalMove, match="give the book a title"):
        draft.begin_page(page_number=3, child_input="more")


def test_complete_page_needs_a_page_being_made() -> None:
    draft = a_book()
    with pytest.raises(IllegalMove):
        draft.complete_page(DraftPage(1, "t", "q", "", "i"))


def test_abandon_page_restores_the_book_and_keeps_the_input() -> None:
    draft = a_book()
    make(draft, 1)
    draft.begin_page(page_number=2, child_input="a storm")
    draft.abandon_page("the storyteller is busy")
    assert draft.state is BookState.IN_PROGRESS
    assert len(draft.pages) == 1
    assert draft.pending_input == "a storm"
    assert draft.last_error == "the storyteller is busy"


def test_parent_writes_a_page() -> None:
    draft = a_book()
    draft.begin_parent_page(page_number=1, text="  Mina opened the gate.  ")
    assert draft.pending_input == "Mina opened the gate."
    draft.complete_page(DraftPage(1, "Mina opened the gate.", "", "p.png", "", PageSource.PARENT))
    assert draft.pages[0].source is PageSource.PARENT


def test_a_failed_parents_page_keeps_their_words_and_question_for_a_retry() -> None:
    import json

    draft = a_book()
    draft.begin_parent_page(page_number=1, text="Mina opened the gate.", question="  Who is there? ")
    draft.abandon_page("the safety check is not answering")
    restored = BookDraft.from_dict(json.loads(json.dumps(draft.to_dict())))
    assert (restored.pending_input, restored.pending_question) == ("Mina opened the gate.", "Who is there?")
    restored.begin_page(page_number=1, child_input="a storm")  # the child has another idea instead
    assert (restored.pending_input, restored.pending_question) == ("a storm", "")


def test_a_draft_keeps_whose_words_the_failed_page_was_made_from() -> None:
    import json

    draft = a_book()
    draft.begin_parent_page(page_number=1, text="Mina opened the gate.")  # as short as an idea
    draft.abandon_page("the illustrator is busy")
    restored = BookDraft.from_dict(json.loads(json.dumps(draft.to_dict())))
    assert restored == draft and restored.pending_source is PageSource.PARENT
    restored.begin_page(page_number=1, child_input="a storm")
    restored.abandon_page("the storyteller is busy")
    again = BookDraft.from_dict(json.loads(json.dumps(restored.to_dict())))
    assert (again.pending_input, again.pending_source) == ("a storm", PageSource.AI)


@pytest.mark.parametrize(
    ("words", "question", "source"),
    [
        ("a storm", "", PageSource.AI),
        ("Mina opened the gate.", "Who is there?", PageSource.PARENT),
        ("Mina walked on. " * 20, "", PageSource.PARENT),  # longer than a child's idea can be
    ],
)
def test_a_draft_saved_before_it_kept_the_source_still_loads(
    words: str, question: str, source: PageSource
) -> None:
    draft = a_book()
    draft.begin_page(page_number=1, child_input="a storm")
    draft.abandon_page("the storyteller is busy")
    older = {**draft.to_dict(), "pending_input": words, "pending_question": question}
    del older["pending_source"]
    restored = BookDraft.from_dict(older)
    assert (restored.pending_input, restored.pending_question) == (words, question)
    assert restored.pending_source is source


def test_edit_page_marks_it_as_the_parents_words() -> None:
    draft = a_book()
    make(draft, 1, text="Old text.")
    draft.edit_page(page_number=1, text="New text.", question="Where now?")
    page = draft.page(1)
    assert (page.text, page.question, page.source, page.picture) == (
        "New text.",
        "Where now?",
        PageSource.PARENT,
        "p1.png",
    )


def test_edit_page_refuses_missing_pages_and_empty_text() -> None:
    draft = a_book()
    make(draft, 1)
    with pytest.raises(IllegalMove, match="no page 2"):
        draft.edit_page(page_number=2, text="x")
    with pytest.raises(InvalidBook, match="needs some words"):
        draft.edit_page(page_number=1, text="  ")


def test_edit_while_generating_is_refused() -> None:
    draft = a_book()
    make(draft, 1)
    draft.begin_page(page_number=2, child_input="go")
    with pytest.raises(AlreadyGenerating):
        draft.edit_page(page_number=1, text="x")


def test_finish_only_when_done() -> None:
    draft = a_book(pages=2)
    make(draft, 1)
    with pytest.raises(IllegalMove, match="1 more page"):
        draft.finish("Our Book")


@pytest.mark.parametrize(("title", "message"), [("  ", "Give your book a title"), ("T" * 81, "at most 80")])
def test_title_rules(title: str, message: str) -> None:
    draft = a_book(pages=2)
    make(draft, 1)
    make(draft, 2)
    with pytest.raises(InvalidBook, match=message):
        draft.finish(title)


def test_finish_hands_over_the_whole_book() -> None:
    draft = a_book(pages=2)
    make(draft, 1, "One.")
    make(draft, 2, "Two.")
    finished = draft.finish("  The Door  ")
    assert finished.title == "The Door"
    assert [p.text for p in finished.pages] == ["One.", "Two."]
    assert finished.characters == tuple(HEROES)


def test_round_trips_through_json_friendly_dict() -> None:
    import json

    draft = a_book()
    make(draft, 1)
    draft.begin_page(page_number=2, child_input="rain")
    restored = BookDraft.from_dict(json.loads(json.dumps(draft.to_dict())))
    assert restored == draft
    assert restored.state is BookState.GENERATING
    assert restored.pages[0].source is PageSource.AI


def test_domain_imports_no_framework() -> None:
    import ast
    from pathlib import Path

    import books.domain

    tree = ast.parse(Path(books.domain.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {name for name in imported if name.split(".")[0] in {"django", "openai", "channels"}}
