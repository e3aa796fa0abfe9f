"""Give the online purchases recorded before members kept lines the lines of their order.

Members may not read orders, so the backfill lives here, on the side that may read both. What
each line records as paid is its share of the items' price after points, as at completion.
"""

from django.db import migrations

BATCH = 500


def backfill(apps, schema_editor):
    Purchase = apps.get_model("members", "Purchase")
    PurchaseLine = apps.get_model("members", "PurchaseLine")
    Order = apps.get_model("orders", "Order")
    OrderLine = apps.get_model("orders", "OrderLine")
    bare = Purchase.objects.filter(channel="online", lines__isnull=True).order_by("pk")
    last_pk = 0
    while True:
        purchases = list(bare.filter(pk__gt=last_pk).values_list("pk", "reference")[:BATCH])
        if not purchases:
            return
        last_pk = purchases[-1][0]
        by_number = dict((reference, pk) for pk, reference in purchases)
        orders = {
            order["pk"]: order
            for order in Order.objects.filter(number__in=by_number).values(
                "pk", "number", "items_fen", "points_discount_fen"
            )
        }
        rows = []
        for line in OrderLine.objects.filter(order_id__in=orders).values(
            "order_id", "sku__product_id", "quantity", "line_total_fen"
        ):
            order = orders[line["order_id"]]
            items = order["items_fen"]
            paid = line["line_total_fen"] * (items - order["points_discount_fen"]) // items if items else 0
            rows.append(
                PurchaseLine(
                    purchase_id=by_number[order["number"]],
                    product_id=line["sku__product_id"],
                    quantity=line["quantity"],
                    amount_fen=paid,
                )
            )
        PurchaseLine.objects.bulk_create(rows)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0003_points_at_checkout"),
        ("members", "0009_purchase_lines"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
