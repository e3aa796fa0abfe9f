from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from o2o.api.errors import api_not_found

api_v1 = [
    path("", include("stores.api.urls")),
    path("", include("inventory.api.urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="mall:home", permanent=False)),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("mall/", include("stores.urls_mall")),
    path("mall/", include("members.urls_mall")),
    path("mall/products/", include("inventory.urls_mall")),
    path("mall/", include("orders.urls_mall")),
    path("mall/", include("commissions.urls_mall")),
    path("payments/wechat/notify/", include("orders.urls_payments")),
    path("console/", include("stores.urls_console")),
    path("console/stock/", include("inventory.urls_console")),
    path("console/orders/", include("orders.urls_console")),
    path("console/calls/", include("members.urls_console")),
    path("console/campaigns/", include("members.urls_campaigns")),
    path("console/promotion/", include("commissions.urls_console")),
    path("api/v1/mall/", include("orders.api.urls")),
    path("api/v1/console/", include("orders.api.urls_console")),
    path("api/v1/erp/", include("integrations.api.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Anything else under /api/ answers in the API's JSON error shape, not an HTML page.
    re_path(r"^api/", api_not_found),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
