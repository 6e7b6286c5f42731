"""Forms: they parse what people type; the book's rules stay in ``books.domain``.

Length limits mirror the domain's constants so a browser (``maxlength``) and the form
refuse too-long input before the domain has to; the domain still checks everything.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from books.domain import (
    MAX_CHARACTERS,
    MAX_CHILD_INPUT_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PAGE_TEXT_LENGTH,
    MAX_PAGES,
    MAX_QUESTION_LENGTH,
    MAX_TITLE_LENGTH,
    MIN_CHARACTERS,
    MIN_PAGES,
    Language,
)
from families.models import Child

CHARACTER_ROWS_SHOWN = 3
"""Rows visible at first; the rest (up to ``MAX_CHARACTERS``) sit behind "more characters"."""

DEFAULT_PAGE_COUNT = 4

# Example characters shown as placeholders in the first rows, so an empty form shows the idea.
EXAMPLE_CHARACTERS = [
    (_("Mina"), _("a girl with a red umbrella")),
    (_("Bori"), _("a sleepy orange cat")),
    (_("Grandpa Oak"), _("a wise old tree who tells jokes")),
]


class CharacterForm(forms.Form):
    """One character row; a row left empty is simply not a character."""

    name = forms.CharField(
        label=_("Name"),
        max_length=MAX_NAME_LENGTH,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    description = forms.CharField(
        label=_("What are they like?"),
        max_length=MAX_DESCRIPTION_LENGTH,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args: Any, example: tuple[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if example:
            self.fields["name"].widget.attrs["placeholder"] = example[0]
            self.fields["description"].widget.attrs["placeholder"] = example[1]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("description") and not cleaned.get("name"):
            self.add_error("name", _("Every character needs a name."))
        return cleaned

    @property
    def is_blank(self) -> bool:
        return not (self.cleaned_data.get("name") or self.cleaned_data.get("description"))


class BaseCharacterFormSet(forms.BaseFormSet):
    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = super().get_form_kwargs(index)
        if index is not None and index < len(EXAMPLE_CHARACTERS):
            kwargs["example"] = EXAMPLE_CHARACTERS[index]
        return kwargs

    def clean(self) -> None:
        if any(self.errors):
            return
        if len(self.characters()) < MIN_CHARACTERS:
            raise forms.ValidationError(_("Name at least one character for the story."))
        names = [name.casefold() for name, _ in self.characters()]
        if len(set(names)) != len(names):
            raise forms.ValidationError(_("Two characters have the same name; give each one their own."))

    def characters(self) -> list[tuple[str, str]]:
        """(name, description) of every row that was filled in, in order."""
        return [
            (form.cleaned_data["name"], form.cleaned_data.get("description", ""))
            for form in self.forms
            if form.is_valid() and not form.is_blank
        ]


# formset_factory is typed as returning the base class; this one has ``characters()``.
CharacterFormSet = cast(
    type[BaseCharacterFormSet],
    forms.formset_factory(
        CharacterForm,
        formset=BaseCharacterFormSet,
        extra=MAX_CHARACTERS,
        max_num=MAX_CHARACTERS,
        absolute_max=MAX_CHARACTERS,
        validate_max=True,
    ),
)


class ChildChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.nickname} ({obj.get_age_band_display()})"


class NewBookForm(forms.Form):
    # Limited to the parent's own children in __init__: another family's child id is
    # simply not a valid choice, so it gets a form error like any other bad input.
    child = ChildChoiceField(
        label=_("Who is making this book?"),
        queryset=Child.objects.none(),
        empty_label=None,
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Choose the child this book is made with."),
            "invalid_choice": _("Choose one of your own children for this book."),
        },
    )
    page_count = forms.IntegerField(
        label=_("How many pages?"),
        min_value=MIN_PAGES,
        max_value=MAX_PAGES,
        initial=DEFAULT_PAGE_COUNT,
        error_messages={
            "min_value": _("A book has at least %(limit_value)s pages."),
            "max_value": _("A book has at most %(limit_value)s pages."),
            "required": _("Choose how many pages the book has."),
        },
    )
    language = forms.ChoiceField(
        label=_("Story language"),
        choices=[(language.value, _(language.label)) for language in Language],
        initial=Language.ENGLISH.value,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args: Any, children: QuerySet[Child], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(ChildChoiceField, self.fields["child"])
        field.queryset = children
        if len(children) == 1:
            field.initial = children[0].pk  # one child: nothing to choose


class ChildInputForm(forms.Form):
    child_input = forms.CharField(
        label=_("What happens next?"),
        max_length=MAX_CHILD_INPUT_LENGTH,
        error_messages={"required": _("Tell us what happens next — a few words are enough.")},
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": _("A dragon comes to tea…")}),
    )


class PageTextForm(forms.Form):
    """A page in the parent's own words: used to write the next page and to edit one."""

    text = forms.CharField(
        label=_("The page's words"),
        max_length=MAX_PAGE_TEXT_LENGTH,
        error_messages={"required": _("A page needs some words.")},
        widget=forms.Textarea(attrs={"rows": 5}),
    )
    question = forms.CharField(
        label=_("A question for the next page (optional)"),
        max_length=MAX_QUESTION_LENGTH,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": _("What do you think happens next?")}),
    )


class FinishForm(forms.Form):
    title = forms.CharField(
        label=_("The book's title"),
        max_length=MAX_TITLE_LENGTH,
        error_messages={"required": _("Give your book a title.")},
        widget=forms.TextInput(attrs={"placeholder": _("Mina and the Blue Door"), "autofocus": True}),
    )
