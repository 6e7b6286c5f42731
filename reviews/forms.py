"""Forms for review and sharing: they parse what people type; the rules stay in the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from reviews.models import MAX_NOTE_LENGTH, Outcome


class SubmitForm(forms.Form):
    note = forms.CharField(
        label=_("A note for the reviewer (optional)"),
        required=False,
        max_length=MAX_NOTE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("For example, who you would like to share it with."),
    )


class DecisionForm(forms.Form):
    """One decision's note. Approving may say something; the others must say why."""

    note = forms.CharField(max_length=MAX_NOTE_LENGTH, widget=forms.Textarea(attrs={"rows": 3}))

    LABELS = {
        Outcome.APPROVED: (_("A note for the family (optional)"), False),
        Outcome.SENT_BACK: (_("What should the family change?"), True),
        Outcome.REJECTED: (_("Why can this book not be shared?"), True),
        Outcome.WITHDRAWN: (_("Why is the approval withdrawn?"), True),
    }
    REQUIRED_MESSAGES = {
        Outcome.SENT_BACK: _("Write a note for the family: say what to change before it is shared."),
        Outcome.REJECTED: _("Give the reason this book cannot be shared."),
        Outcome.WITHDRAWN: _("Give the reason the approval is withdrawn."),
    }

    def __init__(self, *args: Any, outcome: Outcome, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", outcome.value)
        super().__init__(*args, **kwargs)
        self.outcome = outcome
        label, required = self.LABELS[outcome]
        field = self.fields["note"]
        field.label = label
        field.required = required
        if required:
            field.error_messages["required"] = self.REQUIRED_MESSAGES[outcome]


def decision_forms(bound: DecisionForm | None = None) -> dict[str, DecisionForm]:
    """A form for every decision, keyed by outcome; ``bound`` replaces its own (with its errors)."""
    forms_by_outcome = {outcome.value: DecisionForm(outcome=outcome) for outcome in Outcome}
    if bound is not None:
        forms_by_outcome[bound.outcome.value] = bound
    return forms_by_outcome
