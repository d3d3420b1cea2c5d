"""A product catalogue and guest orders: just enough shop to show django-tracify at work."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.db import models
from django.urls import reverse

CURRENCY = "EUR"
SHIPPING = Decimal("4.90")


class Product(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    colour = models.CharField(max_length=7, default="#7c9cbf", help_text="The card's colour.")

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("shop:product", args=[self.slug])


def new_order_number() -> str:
    return "DEMO-" + secrets.token_hex(4).upper()


class Order(models.Model):
    """Field names the default order adapter reads: number, total, currency, email, lines."""

    number = models.CharField(max_length=20, unique=True, default=new_order_number)
    email = models.EmailField()
    currency = models.CharField(max_length=3, default=CURRENCY)
    shipping = models.DecimalField(max_digits=10, decimal_places=2, default=SHIPPING)
    total = models.DecimalField(max_digits=10, decimal_places=2, help_text="Shipping included.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return self.number


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.SET_NULL, null=True, blank=True)
    title = models.CharField(max_length=120)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.title}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity
