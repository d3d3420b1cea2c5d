from __future__ import annotations

from django.contrib import admin

from shop.models import Order, OrderLine, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "price", "slug")
    prepopulated_fields = {"slug": ("name",)}


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    readonly_fields = ("product", "title", "quantity", "unit_price")
    can_delete = False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("number", "email", "total", "currency", "created_at")
    readonly_fields = ("number", "email", "currency", "shipping", "total", "created_at")
    inlines = (OrderLineInline,)
