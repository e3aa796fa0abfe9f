from django import forms
from django.utils.translation import gettext_lazy as _

from o2o.errors import ApplicationError
from o2o.phone import normalize_cn_mobile


class PhoneForm(forms.Form):
    phone = forms.CharField(label=_("Mobile number"), max_length=20)

    def clean_phone(self) -> str:
        try:
            return normalize_cn_mobile(self.cleaned_data["phone"])
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None
