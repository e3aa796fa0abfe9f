"""Clerk console pages of the inventory: the own store's stock."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from inventory.selectors import stock_of_store
from stores.selectors import staff_for_user


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
