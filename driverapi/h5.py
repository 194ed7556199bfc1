"""The drivers' H5 pages (the official account's menu links here). Each page is a plain
template; driverapi/static/driverapi/h5/h5.js reads the driver API with the driver's
token. No server-side session: the pages hold nothing a driver's token does not."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render
from django.urls import path

app_name = "h5"

# Where the wallet pages live (added beside these pages by the wallet work).
WALLET_PATH = "/h5/wallet/"


def _page(page: str, title: str, *, tab: str = "", back: str = "", **data):
    def view(request, **kwargs):
        context = {
            "page": page,
            "title": title,
            "tab": tab,
            "back": back,
            "data": {**data, **kwargs},
            "wallet_url": WALLET_PATH,
        }
        if page == "wallet":  # development: the local fake WeChat Pay takes the payment
            context["data"]["fakepay"] = settings.WECHATPAY_FAKE_URL
        if page == "stations":
            lat, lng = settings.DRIVER_H5_DEFAULT_POSITION.split(",")
            context["data"].update(lat=lat.strip(), lng=lng.strip())
        return render(request, f"driverapi/h5/{page}.html", context)

    view.__name__ = f"h5_{page}"
    return view


urlpatterns = [
    path("", _page("stations", "附近电站", tab="stations"), name="stations"),
    path("login/", _page("login", "登录"), name="login"),
    path("stations/<int:id>/", _page("station", "电站详情", back="/h5/"), name="station"),
    path("scan/", _page("scan", "扫码充电", tab="scan"), name="scan"),
    path(
        "connectors/<int:id>/",
        _page("connector", "启动充电", tab="scan", back="/h5/"),
        name="connector",
    ),
    path("charge/", _page("charge", "充电中", tab="charge"), name="charge"),
    path(
        "sessions/<int:session>/bill/",
        _page("bill", "充电账单", tab="me", back="/h5/bills/"),
        name="session-bill",
    ),
    path("bills/", _page("bills", "我的账单", tab="me", back="/h5/me/"), name="bills"),
    path("bills/<int:bill>/", _page("bill", "充电账单", tab="me", back="/h5/bills/"), name="bill"),
    path("me/", _page("me", "我的", tab="me"), name="me"),
    path("wallet/", _page("wallet", "我的钱包", tab="me", back="/h5/me/"), name="wallet"),
    path(
        "wallet/invoices/",
        _page("invoices", "发票", tab="me", back=WALLET_PATH),
        name="invoices",
    ),
]
