"""Pages of the inventory: the clerk console's stock, and the mall's catalog."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from inventory.models import Category
from inventory.selectors import (
    active_products,
    availability_at,
    prices_at,
    search_products,
    stock_of_store,
    stores_with_stock_query,
)
from o2o.geo import format_distance
from o2o.money import format_yuan
from stores.selectors import nearest_stores, staff_for_user
from stores.session import chosen_store


@login_required
def console_stock(request: HttpRequest) -> HttpResponse:
    """A clerk's own store's stock, searchable, optionally only what runs low."""
    staff = staff_for_user(request.user)
    if staff is None:
        return render(request, "console/not_store_staff.html", status=403)
    text = request.GET.get("q", "").strip()[:100]
    low_only = request.GET.get("low") == "1"
    rows = stock_of_store(store=staff.store, text=text, low_only=low_only)
    context = {"staff": staff, "rows": rows, "q": text, "low_only": low_only, "tab": "stock"}
    template = "console/_stock_rows.html" if request.htmx else "console/stock.html"
    return render(request, template, context)


# --- The mall's catalog ---------------------------------------------------------------------------


@require_GET
def catalog(request: HttpRequest) -> HttpResponse:
    """Categories and products, priced for the chosen store, with "in stock here"."""
    store = chosen_store(request)
    text = request.GET.get("q", "").strip()[:100]
    category_code = request.GET.get("category", "").strip()[:32]
    products = list(search_products(text=text, category_code=category_code)[:100])
    skus = [sku for product in products for sku in product.skus.all() if sku.is_active]
    prices = prices_at(store, skus)
    stock = availability_at(store, skus)
    cards = []
    for product in products:
        own = [sku for sku in product.skus.all() if sku.is_active]
        if not own:
            continue
        cards.append(
            {
                "product": product,
                "from_price": format_yuan(min(prices[sku.pk] for sku in own)),
                "in_stock_here": any(stock[sku.pk].in_stock for sku in own),
            }
        )
    context = {
        "store": store,
        "categories": Category.objects.filter(is_active=True, parent__isnull=True),
        "cards": cards,
        "q": text,
        "category_code": category_code,
    }
    return render(request, "mall/catalog.html", context)


@require_GET
def product_page(request: HttpRequest, product_id: int) -> HttpResponse:
    """A product with its price and availability at the chosen store, and nearby stores that have it."""
    product = get_object_or_404(active_products(), pk=product_id)
    skus = [sku for sku in product.skus.all() if sku.is_active]
    if not skus:
        raise Http404
    selected = next((sku for sku in skus if sku.code == request.GET.get("sku")), skus[0])
    store = chosen_store(request)
    prices = prices_at(store, skus)
    stock = availability_at(store, skus)
    nearby = []
    if store is not None and stock[selected.pk].state != "in_stock":
        nearby = [
            found
            for found in nearest_stores(
                store.point.lat, store.point.lng, limit=4, queryset=stores_with_stock_query(selected)
            )
            if found.store.pk != store.pk
        ][:3]
    context = {
        "product": product,
        "skus": [(sku, format_yuan(prices[sku.pk]), stock[sku.pk]) for sku in skus],
        "selected": selected,
        "price": format_yuan(prices[selected.pk]),
        "availability": stock[selected.pk],
        "store": store,
        "can_deliver": bool(store and store.delivers and stock[selected.pk].in_stock),
        "nearby": [
            {"store": found.store, "distance": format_distance(found.distance_m), "is_open": found.is_open}
            for found in nearby
        ],
    }
    return render(request, "mall/product.html", context)
