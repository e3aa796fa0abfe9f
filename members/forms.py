"""Forms of members' pages and HQ's admin: they check input and show the services' refusals per field."""

from django import forms
from django.db import models
from django.utils.translation import gettext_lazy as _

from inventory.models import Category, Product
from members.campaigns import check_segment_editable, clean_campaign, clean_segment
from members.models import Campaign, Member, Segment, Tier
from o2o.errors import ApplicationError
from o2o.phone import normalize_cn_mobile
from stores.models import Staff

SEGMENT_FIELDS = (
    "name",
    "tiers",
    "home_store",
    "bought_within_days",
    "not_bought_for_days",
    "product",
    "category",
    "min_points",
    "max_points",
)
MESSAGE_FIELDS = ("name", "channel", "title", "body", "link")


class PhoneForm(forms.Form):
    phone = forms.CharField(label=_("Mobile number"), max_length=20)

    def clean_phone(self) -> str:
        try:
            return normalize_cn_mobile(self.cleaned_data["phone"])
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None


class PhoneCodeForm(PhoneForm):
    """The number, and the code texted to it (asked only once a code was sent)."""

    code = forms.CharField(label=_("Verification code"), max_length=12, required=False)


def add_service_errors(form: forms.BaseForm, error: ApplicationError) -> None:
    """Show a service's refusal on the form: each field's messages at the field, the rest on top."""
    if not error.details:
        form.add_error(None, error.message)
    for field, messages in error.details.items():
        for message in messages:
            form.add_error(field if field in form.fields else None, str(message))


def _days_field(label) -> forms.IntegerField:
    return forms.IntegerField(label=label, min_value=1, max_value=3650, required=False)


class SegmentAdminForm(forms.ModelForm):
    """HQ's segment: every filter, the tiers as check boxes (stored as a JSON list)."""

    tiers = forms.MultipleChoiceField(
        label=_("tiers"), choices=Tier.choices, required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Segment
        fields = list(SEGMENT_FIELDS)

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                if self.instance.pk is not None:
                    check_segment_editable(self.instance)
                clean_segment(**{field: data.get(field) for field in SEGMENT_FIELDS if field in self.fields})
            except ApplicationError as error:
                add_service_errors(self, error)
        return data


def _https_by_default(db_field, **kwargs):
    # A link typed without a scheme is taken as https (Django 6's default, asked for now).
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class CampaignAdminForm(forms.ModelForm):
    """HQ's new campaign to a segment."""

    class Meta:
        model = Campaign
        fields = ["segment", *MESSAGE_FIELDS]
        widgets = {"body": forms.Textarea(attrs={"rows": 4})}
        formfield_callback = _https_by_default

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                clean_campaign(**{field: data.get(field) or "" for field in MESSAGE_FIELDS})
            except ApplicationError as error:
                add_service_errors(self, error)
        return data


class StoreCampaignForm(forms.Form):
    """A store manager's campaign in the console: a segment of the store's members and its message.

    With an existing `segment` only the message is asked. The segment takes the campaign's name.
    """

    name = forms.CharField(label=_("Name"), max_length=80)
    tiers = forms.MultipleChoiceField(
        label=_("Tiers"), choices=Tier.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    bought_within_days = _days_field(_("Bought within the last (days)"))
    not_bought_for_days = _days_field(_("Has not bought for (days)"))
    product = forms.ModelChoiceField(
        label=_("Bought this product (code)"),
        queryset=Product.objects.filter(is_active=True),
        to_field_name="code",
        required=False,
        widget=forms.TextInput(attrs={"list": "products", "autocapitalize": "none"}),
    )
    category = forms.ModelChoiceField(
        label=_("Bought in this category"), queryset=Category.objects.filter(is_active=True), required=False
    )
    min_points = forms.IntegerField(label=_("Points at least"), required=False)
    max_points = forms.IntegerField(label=_("Points at most"), required=False)
    channel = forms.ChoiceField(label=_("Send by"), choices=Campaign.Channel.choices, widget=forms.RadioSelect)
    title = forms.CharField(label=_("Title (WeChat)"), max_length=40, required=False)
    body = forms.CharField(label=_("Message"), max_length=200, widget=forms.Textarea(attrs={"rows": 4}))
    link = forms.URLField(label=_("Link (WeChat)"), max_length=500, required=False, assume_scheme="https")

    def __init__(self, *args, staff, segment: Segment | None = None, channels=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.staff, self.segment = staff, segment
        if segment is not None:
            for field in SEGMENT_FIELDS:
                if field != "name":
                    self.fields.pop(field, None)
        if channels is not None:
            self.fields["channel"].choices = [c for c in Campaign.Channel.choices if c[0] in channels]
            if len(channels) == 1:
                self.fields["channel"].initial = next(iter(channels))
            if Campaign.Channel.WECHAT not in channels:
                # Title and link belong to WeChat messages only.
                self.fields.pop("title")
                self.fields.pop("link")

    @property
    def asks_segment(self) -> bool:
        return self.segment is None

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            if self.asks_segment:
                clean_segment(staff=self.staff, **self.segment_fields())
            clean_campaign(**self.message_fields())
        except ApplicationError as error:
            add_service_errors(self, error)
        return data

    def segment_fields(self) -> dict:
        return {field: self.cleaned_data.get(field) for field in SEGMENT_FIELDS if field in self.fields}

    def message_fields(self) -> dict:
        return {field: self.cleaned_data.get(field) or "" for field in MESSAGE_FIELDS}


class ReferralChangeForm(forms.Form):
    """HQ moves a member to another referrer and/or guide. The fields name them as people say them:
    a member by mobile or referral code, a guide by staff code; empty for none."""

    referrer = forms.CharField(
        label=_("referred by"),
        max_length=32,
        required=False,
        help_text=_("The new referrer's mobile or referral code; empty for none."),
    )
    guide = forms.CharField(
        label=_("shopping guide"), max_length=32, required=False, help_text=_("A staff code; empty for none.")
    )
    reason = forms.CharField(label=_("reason"), max_length=255, widget=forms.TextInput(attrs={"size": 60}))

    def __init__(self, *args, member: Member, **kwargs):
        self.member = member
        initial = {
            "referrer": (member.referrer.phone or member.referrer.referral_code or "") if member.referrer else "",
            "guide": member.guide.staff_code if member.guide else "",
        }
        super().__init__(*args, initial={**initial, **kwargs.pop("initial", {})}, **kwargs)

    def clean_referrer(self) -> Member | None:
        text = self.cleaned_data["referrer"].strip()
        if not text:
            return None
        try:
            found = Member.objects.filter(phone=normalize_cn_mobile(text)).first()
        except ApplicationError:  # not a mobile: a referral code
            found = Member.objects.filter(referral_code=text.upper()).first()
        if found is None:
            raise forms.ValidationError(_("No member has this mobile or referral code."))
        return found

    def clean_guide(self) -> Staff | None:
        code = self.cleaned_data["guide"].strip()
        if not code:
            return None
        found = Staff.objects.select_related("store").filter(staff_code__iexact=code).first()
        if found is None:
            raise forms.ValidationError(_("No staff member has this staff code."))
        return found

    def clean(self):
        data = super().clean()
        if not self.errors and data.get("referrer") == self.member.referrer and data.get("guide") == self.member.guide:
            raise forms.ValidationError(_("These are the member's referrer and guide already."))
        return data
