"""/api/v1/: the driver API."""

from django.urls import path

from . import accounts

app_name = "driverapi"

urlpatterns = [
    path("me/", accounts.MeView.as_view(), name="me"),
    path("auth/logout/", accounts.LogoutView.as_view(), name="logout"),
]
