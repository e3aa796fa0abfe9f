"""Pages of the stores app: the mall's store finder and the clerk console's sign-in."""

import logging

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from integrations.vendors.wechat import is_wechat_browser, official_account
from o2o.errors import ApplicationError
from o2o.geo import amap_marker_url, format_distance, parse_point, wgs84_to_gcj02
from stores.models import Store
from stores.selectors import active_stores_by_city, nearest_stores, staff_for_user
from stores.session import choose_store as choose_store_in_session
from stores.session import chosen_store


def _wechat_jssdk_config(request: HttpRequest) -> dict | None:
    """wx.config for this page inside WeChat, so the page can ask for the GCJ-02 location; else None."""
    account = official_account()
    if account is None or not is_wechat_browser(request.headers.get("User-Agent", "")):
        return None
    try:
        return account.jssdk_config(url=request.build_absolute_uri(), js_api_list=["getLocation", "openLocation"])
    except ApplicationError as error:
        logger.warning("No JS-SDK signature for the mall page: %s", error)
        return None  # the page falls back to the browser's geolocation


@require_GET
def mall_home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "mall/home.html",
        {
            "chosen_store": chosen_store(request),
            "cities": active_stores_by_city(),
            "wx_config": _wechat_jssdk_config(request),
        },
    )


@require_GET
def nearby_stores(request: HttpRequest) -> HttpResponse:
    """The list of nearest stores for a position; browsers send WGS-84 and say so."""
    try:
        point = parse_point(request.GET.get("lat", ""), request.GET.get("lng", ""), field="position")
    except ApplicationError as error:
        return render(request, "mall/_nearby_error.html", {"error": error}, status=400)
    if request.GET.get("coord", "gcj02") == "wgs84":
        point = wgs84_to_gcj02(point)
    rows = [
        {
            "store": found.store,
            "is_open": found.is_open,
            "distance_label": format_distance(found.distance_m),
            "map_url": amap_marker_url(found.store.point, found.store.name),
        }
        for found in nearest_stores(point.lat, point.lng, limit=10)
    ]
    return render(request, "mall/_nearby.html", {"nearby": rows, "chosen_store": chosen_store(request)})


@require_POST
def choose_store(request: HttpRequest) -> HttpResponse:
    store = get_object_or_404(Store, pk=request.POST.get("store_id") or 0, is_active=True)
    choose_store_in_session(request, store)
    next_url = request.POST.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return redirect(next_url)
    return redirect("mall:home")


logger = logging.getLogger(__name__)


class ConsoleLoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


class ConsoleLogoutView(auth_views.LogoutView):
    next_page = settings.LOGOUT_REDIRECT_URL


@login_required
def console_home(request: HttpRequest) -> HttpResponse:
    staff = staff_for_user(request.user)
    if staff is None:
        return render(request, "console/not_store_staff.html", status=403)
    return redirect("console-orders:list")
