"""Forms of commissions' pages: they check input; the services decide. The filters of HQ's
commission reports: a bad value is a form error, never a server error."""

from datetime import date
from decimal import Decimal

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from commissions.selectors import ANOMALY_MIN_MEMBERS, default_period
from o2o.money import yuan_to_fen
from stores.models import Store

# The reports read days as local midnights: far-off years would overflow the conversion.
EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)


class PeriodForm(forms.Form):
    since = forms.DateField(label=_("first day"), widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("last day"), widget=forms.DateInput(attrs={"type": "date"}))

    @classmethod
    def from_query(cls, query) -> "PeriodForm":
        """The form bound to the page's query, this month where the period is not given."""
        since, until = default_period()
        data = {"since": since.isoformat(), "until": until.isoformat(), **cls.defaults(), **query.dict()}
        return cls(data)

    @classmethod
    def defaults(cls) -> dict:
        return {}

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        for day in (since, until):
            if day is not None and not EARLIEST <= day <= LATEST:
                raise forms.ValidationError(gettext("Choose days between 2000 and 2099."))
        if since and until and since > until:
            raise forms.ValidationError(gettext("The period ends before it starts."))
        return data


SORT_CHOICES = [
    ("-earned_fen", _("commission earned")),
    ("-sales_fen", _("sales brought")),
    ("-orders", _("orders brought")),
    ("-signups", _("sign-ups")),
    ("-visits", _("visits")),
    ("-pending_fen", _("pending")),
    ("-settled_fen", _("settled")),
    ("-paid_out_fen", _("paid out")),
]


class ResultsForm(PeriodForm):
    who = forms.ChoiceField(label=_("results of"), choices=[("promoters", _("promoters")), ("guides", _("guides"))])
    store = forms.ModelChoiceField(
        label=_("store"), queryset=Store.objects.order_by("code"), required=False, empty_label=_("all stores")
    )
    sort = forms.ChoiceField(label=_("largest first by"), choices=SORT_CHOICES)

    @classmethod
    def defaults(cls) -> dict:
        return {"who": "promoters", "sort": "-earned_fen"}


class AnomaliesForm(PeriodForm):
    min_members = forms.IntegerField(
        label=_("members in a group, at least"),
        min_value=2,
        max_value=1000,
        help_text=_("sign-ups from one device, or under one referrer or guide with the same phone prefix"),
    )

    @classmethod
    def defaults(cls) -> dict:
        return {"min_members": ANOMALY_MIN_MEMBERS}


class WithdrawalForm(forms.Form):
    """How much of the available balance to withdraw, in yuan with at most two decimals."""

    amount = forms.DecimalField(
        label=_("Amount (yuan)"),
        min_value=Decimal("0.01"),
        max_value=Decimal("1000000"),
        max_digits=9,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal", "min": "0.01"}),
    )

    def amount_fen(self) -> int:
        return yuan_to_fen(self.cleaned_data["amount"])
