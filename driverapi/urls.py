"""/api/v1/: the driver API."""

from django.urls import path

from . import accounts

app_name = "driverapi"

urlpatterns = [
    path("auth/wechat/authorize/", accounts.WeChatAuthorizeView.as_view(), name="wechat-url"),
    path("auth/wechat/", accounts.WeChatLoginView.as_view(), name="wechat-login"),
    path("auth/phone/code/", accounts.PhoneCodeView.as_view(), name="phone-code"),
    path("auth/phone/", accounts.PhoneBindView.as_view(), name="phone-bind"),
    path("auth/logout/", accounts.LogoutView.as_view(), name="logout"),
    path("me/", accounts.MeView.as_view(), name="me"),
]
