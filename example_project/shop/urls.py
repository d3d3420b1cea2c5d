from __future__ import annotations

from django.urls import path

from shop import views

app_name = "shop"

urlpatterns = [
    path("", views.product_list, name="products"),
    path("products/<slug:slug>/", views.product_detail, name="product"),
    path("cart/", views.cart, name="cart"),
    path("cart/add/<slug:slug>/", views.cart_add, name="cart_add"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/<str:number>/thanks/", views.thanks, name="thanks"),
]
