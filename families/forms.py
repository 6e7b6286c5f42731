"""Forms for a child's profile."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from families.models import AGE_BAND_LABELS, MAX_NICKNAME_LENGTH, Child


class ChildForm(forms.Form):
    nickname = forms.CharField(
        label=_("Nickname"),
        max_length=MAX_NICKNAME_LENGTH,
        help_text=_("The name your child likes to be called; no full names needed."),
        error_messages={"required": _("Give your child a nickname.")},
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": _("Sunny")}),
    )
    age_band = forms.ChoiceField(
        label=_("Age"),
        choices=[(band.value, label) for band, label in AGE_BAND_LABELS.items()],
        error_messages={"required": _("Choose your child's age.")},
        widget=forms.RadioSelect,
    )

    def __init__(self, *args: Any, parent: Any, editing: Child | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parent, self.editing = parent, editing

    def clean_nickname(self) -> str:
        nickname: str = self.cleaned_data["nickname"].strip()
        siblings = Child.objects.filter(parent=self.parent, nickname__iexact=nickname)
        if self.editing is not None:
            siblings = siblings.exclude(pk=self.editing.pk)
        if siblings.exists():
            raise forms.ValidationError(
                _("You already have a child called %(name)s."), params={"name": nickname}
            )
        return nickname
