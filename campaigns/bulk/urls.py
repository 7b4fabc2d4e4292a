"""The bulksheet API, included under /api/v1/."""

from django.urls import path

from campaigns.bulk import views

urlpatterns = [
    path("bulksheets/", views.BulksheetUploadView.as_view(), name="bulksheet-list"),
    path("bulksheets/export/", views.BulksheetExportView.as_view(), name="bulksheet-export"),
    path("bulksheets/<int:pk>/", views.BulksheetDetailView.as_view(), name="bulksheet-detail"),
    path("bulksheets/<int:pk>/apply/", views.BulksheetApplyView.as_view(), name="bulksheet-apply"),
    path(
        "bulksheets/<int:pk>/result/",
        views.BulksheetResultView.as_view(),
        name="bulksheet-result",
    ),
]
