"""The ERP/POS open API, mounted at /api/v1/erp/ (o2o.urls). Every view here declares its scope."""

from django.urls import path

from integrations.api import catalog, sales, stock, views, views_crm, views_orders

app_name = "erp"

urlpatterns = [
    path("members/lookup/", views.MemberLookupApi.as_view(), name="member-lookup"),
    path("members/<int:member_id>/points/", views.MemberPointsApi.as_view(), name="member-points"),
    path("stores/<str:store_code>/follow-ups/", views.StoreFollowUpsApi.as_view(), name="store-follow-ups"),
    path("orders/changes/", views_orders.OrderChangesApi.as_view(), name="order-changes"),
    path("orders/<str:number>/status/", views_orders.OrderStatusApi.as_view(), name="order-status"),
    path("members/upsert/", views_crm.MemberUpsertApi.as_view(), name="member-upsert"),
    path("stores/<str:store_code>/sales/", sales.StoreSalesApi.as_view(), name="store-sales"),
    path("stores/<str:store_code>/returns/", sales.StoreReturnsApi.as_view(), name="store-returns"),
    # catalog, prices and stock pushed by the ERP (integrations/api/catalog.py, stock.py)
    path("catalog/products/", catalog.CatalogProductsApi.as_view(), name="catalog-products"),
    path("prices/", catalog.PricesApi.as_view(), name="prices"),
    path("stores/<str:store_code>/stock/", stock.StoreStockApi.as_view(), name="store-stock"),
    path("stores/<str:store_code>/stock/snapshot/", stock.StockSnapshotApi.as_view(), name="store-stock-snapshot"),
    path("stores/<str:store_code>/stock/moves/", stock.StockMovesApi.as_view(), name="store-stock-moves"),
    path("stock/changes/", stock.StockChangesApi.as_view(), name="stock-changes"),
]
