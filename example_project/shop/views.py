from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

import django_tracify as tracify
from shop.cart import Cart
from shop.forms import AddToCartForm, CheckoutForm
from shop.models import Order, OrderLine, Product

PLACED_ORDERS = "placed_orders"


def product_list(request: HttpRequest) -> HttpResponse:
    # The pageview is recorded by TracifyMiddleware once this response is sent.
    return render(request, "shop/product_list.html", {"products": Product.objects.all()})


def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    product = get_object_or_404(Product, slug=slug)
    # The productview is recorded by {% tracify_productview product %} in the template.
    context = {"product": product, "form": AddToCartForm()}
    return render(request, "shop/product_detail.html", context)


@require_POST
def cart_add(request: HttpRequest, slug: str) -> HttpResponse:
    product = get_object_or_404(Product, slug=slug)
    form = AddToCartForm(request.POST)
    if not form.is_valid():
        return render(
            request, "shop/product_detail.html", {"product": product, "form": form}, status=400
        )
    quantity = form.cleaned_data["quantity"]
    Cart(request).add(product, quantity)
    tracify.track_addtocart(request, product, quantity)
    messages.success(request, f"Added {quantity} x {product.name} to your cart.")
    return redirect("shop:cart")


def cart(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/cart.html", {"cart": Cart(request)})


def checkout(request: HttpRequest) -> HttpResponse:
    cart = Cart(request)
    lines = cart.lines()
    if not lines:
        messages.info(request, "Your cart is empty.")
        return redirect("shop:products")
    form = CheckoutForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            order = Order.objects.create(email=form.cleaned_data["email"], total=cart.total)
            OrderLine.objects.bulk_create(
                OrderLine(
                    order=order,
                    product=line.product,
                    title=line.product.name,
                    quantity=line.quantity,
                    unit_price=line.product.price,
                )
                for line in lines
            )
            # In the order's transaction: no order, no purchase event; no network call here.
            tracify.track_purchase(order)
        cart.clear()
        request.session[PLACED_ORDERS] = [*request.session.get(PLACED_ORDERS, []), order.number]
        return redirect("shop:thanks", number=order.number)
    return render(request, "shop/checkout.html", {"cart": cart, "form": form})


def thanks(request: HttpRequest, number: str) -> HttpResponse:
    if number not in request.session.get(PLACED_ORDERS, []):
        raise Http404("No such order in this session.")
    order = get_object_or_404(Order.objects.prefetch_related("lines"), number=number)
    return render(request, "shop/thanks.html", {"order": order})
