"""The console's pages, included at the site root (the dashboard is the campaign list)."""

from django.urls import path

from campaigns.console.views import bulk, campaigns, creatives, line_items, members

urlpatterns = [
    path("", campaigns.campaign_list, name="dashboard"),
    path("campaigns/new/", campaigns.campaign_create, name="console-campaign-create"),
    path("campaigns/<int:pk>/", campaigns.campaign_detail, name="console-campaign"),
    path("campaigns/<int:pk>/edit/", campaigns.campaign_edit, name="console-campaign-edit"),
    path("campaigns/<int:pk>/<slug:move>/", campaigns.campaign_move, name="console-campaign-move"),
    path(
        "campaigns/<int:campaign_pk>/line-items/new/",
        line_items.line_item_create,
        name="console-line-item-create",
    ),
    path("line-items/<int:pk>/", line_items.line_item_detail, name="console-line-item"),
    path("line-items/<int:pk>/edit/", line_items.line_item_edit, name="console-line-item-edit"),
    path(
        "line-items/<int:pk>/creatives/",
        line_items.line_item_creatives,
        name="console-line-item-creatives",
    ),
    path(
        "line-items/<int:pk>/<slug:move>/",
        line_items.line_item_move,
        name="console-line-item-move",
    ),
    path("targeting/regions/", line_items.regions, name="console-regions"),
    # Beside creatives.urls' <id>/preview/, which the library's pages embed.
    path("creatives/", creatives.creative_list, name="console-creatives"),
    path("creatives/new/", creatives.creative_create, name="console-creative-create"),
    path("creatives/<int:pk>/", creatives.creative_detail, name="console-creative"),
    path("creatives/<int:pk>/edit/", creatives.creative_edit, name="console-creative-edit"),
    path("bulk/", bulk.bulk_upload, name="console-bulk"),
    path("bulk/export/", bulk.bulk_export, name="console-bulk-export"),
    path("bulk/<int:pk>/", bulk.bulk_detail, name="console-bulk-detail"),
    path("bulk/<int:pk>/apply/", bulk.bulk_apply, name="console-bulk-apply"),
    path("bulk/<int:pk>/status.json", bulk.bulk_status, name="console-bulk-status"),
    path("bulk/<int:pk>/result.csv", bulk.bulk_result, name="console-bulk-result"),
    path("members/", members.member_list, name="console-members"),
    path("members/<int:pk>/role/", members.member_role, name="console-member-role"),
    path("members/<int:pk>/remove/", members.member_remove, name="console-member-remove"),
    path(
        "creatives/<int:pk>/archive/", creatives.creative_archive, name="console-creative-archive"
    ),
]
