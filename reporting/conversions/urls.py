from django.urls import path
from rest_framework.routers import DefaultRouter

from reporting.conversions import api
from reporting.conversions.views import ConversionPostbackView

router = DefaultRouter()
router.register("conversions", api.ConversionViewSet, basename="conversion")
router.register("conversion-keys", api.ConversionKeyViewSet, basename="conversionkey")

urlpatterns = [
    path("conversions/postback/", ConversionPostbackView.as_view(), name="api-conversion-postback"),
    *router.urls,
]
