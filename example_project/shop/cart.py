"""The cart lives in the session: {product id: quantity}."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.http import HttpRequest

from shop.models import SHIPPING, Product

SESSION_KEY = "cart"
MAX_QUANTITY = 99


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def title(self) -> str:
        return self.product.name

    @property
    def unit_price(self) -> Decimal:
        return self.product.price

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class Cart:
    def __init__(self, request: HttpRequest) -> None:
        self.session = request.session
        self.quantities: dict[str, int] = dict(self.session.get(SESSION_KEY, {}))

    def add(self, product: Product, quantity: int) -> None:
        key = str(product.pk)
        self.quantities[key] = min(self.quantities.get(key, 0) + quantity, MAX_QUANTITY)
        self._save()

    def clear(self) -> None:
        self.quantities = {}
        self._save()

    def _save(self) -> None:
        self.session[SESSION_KEY] = self.quantities

    def lines(self) -> list[CartLine]:
        products = Product.objects.in_bulk([int(key) for key in self.quantities])
        return [
            CartLine(products[int(key)], quantity)
            for key, quantity in self.quantities.items()
            if int(key) in products
        ]

    def __iter__(self) -> Iterator[CartLine]:
        return iter(self.lines())

    def __len__(self) -> int:
        return sum(self.quantities.values())

    @property
    def subtotal(self) -> Decimal:
        return sum((line.line_total for line in self.lines()), Decimal("0.00"))

    @property
    def shipping(self) -> Decimal:
        return SHIPPING

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.shipping
