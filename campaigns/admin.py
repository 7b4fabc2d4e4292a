from django.contrib import admin

from campaigns.models import Advertiser, Campaign, LineItem, Membership, Placement, Publisher


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Advertiser)
class AdvertiserAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


class LineItemInline(admin.TabularInline):
    model = LineItem
    extra = 0
    fields = ["name", "status", "cpm_bid", "sizes"]
    show_change_link = True


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "advertiser", "status", "start_at", "end_at", "daily_budget"]
    list_filter = ["status", "advertiser"]
    search_fields = ["name", "advertiser__name"]
    date_hierarchy = "start_at"
    inlines = [LineItemInline]


@admin.register(LineItem)
class LineItemAdmin(admin.ModelAdmin):
    list_display = ["name", "campaign", "status", "cpm_bid", "sizes"]
    list_filter = ["status", "campaign__advertiser"]
    search_fields = ["name", "campaign__name"]
    autocomplete_fields = ["campaign"]
    filter_horizontal = ["placements", "creatives"]


class PlacementInline(admin.TabularInline):
    model = Placement
    extra = 0
    fields = ["name", "sizes", "floor_cpm", "is_active", "key"]
    readonly_fields = ["key"]


@admin.register(Publisher)
class PublisherAdmin(admin.ModelAdmin):
    list_display = ["name", "domain"]
    search_fields = ["name", "domain"]
    inlines = [PlacementInline]


@admin.register(Placement)
class PlacementAdmin(admin.ModelAdmin):
    list_display = ["name", "publisher", "sizes", "floor_cpm", "is_active"]
    list_filter = ["is_active", "publisher"]
    search_fields = ["name", "publisher__name"]
    readonly_fields = ["key"]
