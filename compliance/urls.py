"""The data-subject request API, included under /api/v1/."""

from rest_framework.routers import SimpleRouter

from compliance.api import DataSubjectRequestViewSet

router = SimpleRouter()
router.register("data-subject-requests", DataSubjectRequestViewSet, basename="datasubjectrequest")

urlpatterns = router.urls
