from django import forms
from django.utils.translation import gettext_lazy as _

from orders.models import Order


class CheckoutForm(forms.Form):
    fulfilment = forms.ChoiceField(label=_("How do you want it?"), choices=Order.Fulfilment.choices)
    pickup_store = forms.IntegerField(required=False)
    recipient_name = forms.CharField(label=_("Recipient"), max_length=50, required=False)
    recipient_phone = forms.CharField(label=_("Phone"), max_length=20, required=False)
    address = forms.CharField(label=_("Address"), max_length=255, required=False)
    latitude = forms.FloatField(required=False, min_value=-90, max_value=90)
    longitude = forms.FloatField(required=False, min_value=-180, max_value=180)
    points = forms.IntegerField(label=_("Use points"), required=False, min_value=0)

    def clean(self):
        data = super().clean()
        if data.get("fulfilment") == Order.Fulfilment.PICKUP and not data.get("pickup_store"):
            self.add_error("pickup_store", _("Choose a store to pick up from."))
        if data.get("fulfilment") == Order.Fulfilment.DELIVERY:
            for field in ("recipient_name", "recipient_phone", "address"):
                if not data.get(field):
                    self.add_error(field, _("Needed for delivery."))
            if data.get("latitude") is None or data.get("longitude") is None:
                self.add_error("address", _("Share your location so we can find a store that delivers to you."))
        return data
