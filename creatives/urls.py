from django.urls import path

from creatives import views

urlpatterns = [
    path("<int:pk>/preview/", views.preview, name="creative-preview"),
]
