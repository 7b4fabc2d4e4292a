from rest_framework.routers import SimpleRouter

from creatives.api.views import CreativeViewSet

router = SimpleRouter()
router.register("creatives", CreativeViewSet, basename="creative")

urlpatterns = router.urls
