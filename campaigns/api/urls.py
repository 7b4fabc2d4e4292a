from rest_framework.routers import DefaultRouter

from campaigns.api import views

router = DefaultRouter()
router.register("organisations", views.OrganisationViewSet, basename="organisation")
router.register("members", views.MemberViewSet, basename="member")
router.register("campaigns", views.CampaignViewSet, basename="campaign")
router.register("line-items", views.LineItemViewSet, basename="lineitem")
router.register("line-item-creatives", views.AssignmentViewSet, basename="assignment")
router.register("deals", views.DealViewSet, basename="deal")
router.register("audit-log", views.AuditEntryViewSet, basename="auditentry")

urlpatterns = router.urls
