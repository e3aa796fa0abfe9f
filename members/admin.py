"""HQ's view of members. Identity comes from WeChat; HQ may correct a home store, with the source recorded."""

from django.contrib import admin

from members.models import Member


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = ["id", "nickname", "phone", "home_store", "home_store_source", "joined_at", "is_active"]
    list_filter = ["is_active", "home_store_source", "home_store"]
    search_fields = ["phone", "nickname", "openid", "unionid"]
    list_select_related = ["home_store"]
    readonly_fields = ["openid", "unionid", "joined_at", "home_store_set_at"]
    autocomplete_fields = ["home_store"]
    date_hierarchy = "joined_at"
