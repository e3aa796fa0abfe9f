"""Forms of HQ's stock screens in the admin; each is handed to one inventory service."""

from django import forms
from django.forms import formset_factory
from django.utils.translation import gettext_lazy as _

from inventory.models import SKU
from stores.models import Store


class StockChangeForm(forms.Form):
    ACTIONS = [("receive", _("Receive goods")), ("count", _("Set counted quantity"))]

    action = forms.ChoiceField(label=_("What happened"), choices=ACTIONS)
    store = forms.ModelChoiceField(label=_("Store"), queryset=Store.objects.filter(is_active=True))
    sku = forms.ModelChoiceField(label=_("SKU"), queryset=SKU.objects.filter(is_active=True).select_related("product"))
    quantity = forms.IntegerField(
        label=_("Quantity"), min_value=0, help_text=_("Received: how many arrived. Count: how many are on the shelf.")
    )
    reason = forms.CharField(label=_("Reason / note"), max_length=255, required=False)

    def clean(self):
        data = super().clean()
        if data.get("action") == "receive" and data.get("quantity") == 0:
            self.add_error("quantity", _("Receive at least one unit."))
        return data


class TransferRequestForm(forms.Form):
    from_store = forms.ModelChoiceField(label=_("From store"), queryset=Store.objects.filter(is_active=True))
    to_store = forms.ModelChoiceField(label=_("To store"), queryset=Store.objects.filter(is_active=True))
    reference = forms.CharField(label=_("Reference"), max_length=64, required=False)
    note = forms.CharField(label=_("Note"), max_length=255, required=False)

    def clean(self):
        data = super().clean()
        if data.get("from_store") and data.get("from_store") == data.get("to_store"):
            self.add_error("to_store", _("Choose a different store than the source."))
        return data


class TransferLineForm(forms.Form):
    sku = forms.ModelChoiceField(label=_("SKU"), queryset=SKU.objects.filter(is_active=True).select_related("product"))
    quantity = forms.IntegerField(label=_("Quantity"), min_value=1)


TransferLineFormSet = formset_factory(TransferLineForm, extra=3, min_num=1, validate_min=True)
