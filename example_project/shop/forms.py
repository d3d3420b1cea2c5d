from __future__ import annotations

from django import forms

from shop.cart import MAX_QUANTITY


class AddToCartForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY, initial=1)


class CheckoutForm(forms.Form):
    email = forms.EmailField(
        label="Email for the receipt",
        widget=forms.EmailInput(attrs={"placeholder": "you@example.com", "autocomplete": "email"}),
    )
