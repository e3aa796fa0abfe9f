from rest_framework import serializers

from inventory.models import SKU, Category, Product, ProductImage, Stock


class CategorySerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Category
        fields = ["code", "name", "parent"]


class ProductImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProductImage
        fields = ["image", "alt_text"]


class SkuSerializer(serializers.ModelSerializer):
    price_fen = serializers.SerializerMethodField(
        help_text="Price in fen: the store's own price when `store` is given."
    )

    class Meta:
        model = SKU
        fields = ["id", "code", "barcode", "spec", "price_fen", "is_active"]

    def get_price_fen(self, sku: SKU) -> int:
        return self.context.get("prices", {}).get(sku.pk, sku.price_fen)


class ProductSerializer(serializers.ModelSerializer):
    category = CategorySerializer(read_only=True)
    images = ProductImageSerializer(many=True, read_only=True)
    skus = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "code", "name", "brand", "category", "description", "images", "skus"]

    def get_skus(self, product: Product) -> list[dict]:
        active = [sku for sku in product.skus.all() if sku.is_active]
        return SkuSerializer(active, many=True, context=self.context).data


class StockSerializer(serializers.ModelSerializer):
    store = serializers.CharField(source="store.code")
    sku = serializers.CharField(source="sku.code")
    product = serializers.CharField(source="sku.product.name")
    spec = serializers.CharField(source="sku.spec")
    available = serializers.IntegerField()
    is_low = serializers.BooleanField()

    class Meta:
        model = Stock
        fields = [
            "store",
            "sku",
            "product",
            "spec",
            "on_hand",
            "reserved",
            "available",
            "low_stock_threshold",
            "is_low",
            "updated_at",
        ]
