"""Read-only catalog and stock API."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from inventory.api.serializers import ProductSerializer, StockSerializer
from inventory.models import Product, Stock
from inventory.selectors import active_products, prices_at, search_products, stock_rows
from o2o.errors import NotFound
from stores.models import Store
from stores.selectors import stores_visible_to


def _store_for_prices(store_id: int | None) -> Store | None:
    if store_id is None:
        return None
    store = Store.objects.filter(pk=store_id, is_active=True).first()
    if store is None:
        raise NotFound("No such store.", code="store_not_found", details={"store": [str(store_id)]})
    return store


class ProductListApi(GenericAPIView):
    """Active products with their active SKUs; prices are the given store's, else HQ's."""

    permission_classes = [AllowAny]
    serializer_class = ProductSerializer
    queryset = Product.objects.none()  # for the schema; rows come from the selector

    class FilterSerializer(serializers.Serializer):
        q = serializers.CharField(required=False, max_length=100)
        category = serializers.CharField(required=False, max_length=32)
        store = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(parameters=[FilterSerializer], responses={200: ProductSerializer(many=True)})
    def get(self, request):
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        store = _store_for_prices(params.validated_data.get("store"))
        products = search_products(
            text=params.validated_data.get("q", ""), category_code=params.validated_data.get("category", "")
        )
        page = self.paginate_queryset(products)
        skus = [sku for product in page for sku in product.skus.all()]
        context = {"request": request, "prices": prices_at(store, skus)}
        return self.get_paginated_response(ProductSerializer(page, many=True, context=context).data)


class ProductDetailApi(GenericAPIView):
    permission_classes = [AllowAny]
    serializer_class = ProductSerializer

    class FilterSerializer(serializers.Serializer):
        store = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(parameters=[FilterSerializer], responses={200: ProductSerializer})
    def get(self, request, product_id: int):
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        product = get_object_or_404(active_products(), pk=product_id)
        store = _store_for_prices(params.validated_data.get("store"))
        context = {"request": request, "prices": prices_at(store, product.skus.all())}
        return Response(ProductSerializer(product, context=context).data)


class StockListApi(GenericAPIView):
    """Stock rows of the stores the caller may see (HQ: all; store staff: their own)."""

    permission_classes = [IsAuthenticated]
    serializer_class = StockSerializer
    queryset = Stock.objects.none()  # for the schema; rows come from the selector

    class FilterSerializer(serializers.Serializer):
        store = serializers.CharField(required=False, max_length=32, help_text="store code")
        sku = serializers.CharField(required=False, max_length=32, help_text="SKU code")
        low = serializers.BooleanField(default=False, help_text="only rows at or under their low-stock threshold")

    @extend_schema(parameters=[FilterSerializer], responses={200: StockSerializer(many=True)})
    def get(self, request):
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        visible = stores_visible_to(request.user)
        if "store" in data and not visible.filter(code=data["store"]).exists():
            raise NotFound(
                "No such store among those you may see.", code="store_not_found", details={"store": [data["store"]]}
            )
        rows = stock_rows(stores=visible, store_code=data.get("store"), sku_code=data.get("sku"), low_only=data["low"])
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(StockSerializer(page, many=True).data)
