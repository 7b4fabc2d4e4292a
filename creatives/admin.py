from django.contrib import admin
from django.utils.html import format_html

from creatives.models import Creative
from creatives.rendering import asset_url


@admin.register(Creative)
class CreativeAdmin(admin.ModelAdmin):
    list_display = ["name", "advertiser", "kind", "size", "preview"]
    list_filter = ["kind", "advertiser"]
    search_fields = ["name", "advertiser__name"]
    readonly_fields = ["width", "height", "preview"]

    @admin.display(description="Preview")
    def preview(self, obj: Creative) -> str:
        if not obj.image:
            return "-"
        return format_html(
            '<img src="{}" alt="" style="max-width:150px;max-height:100px">',
            asset_url(obj.image.name or ""),
        )
