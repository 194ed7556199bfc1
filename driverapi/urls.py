"""/api/v1/: the driver API."""

from django.urls import path

from . import accounts, charging, reservations, stations, wallet

app_name = "driverapi"

urlpatterns = [
    path("auth/wechat/authorize/", accounts.WeChatAuthorizeView.as_view(), name="wechat-url"),
    path("auth/wechat/", accounts.WeChatLoginView.as_view(), name="wechat-login"),
    path("auth/phone/code/", accounts.PhoneCodeView.as_view(), name="phone-code"),
    path("auth/phone/", accounts.PhoneBindView.as_view(), name="phone-bind"),
    path("auth/logout/", accounts.LogoutView.as_view(), name="logout"),
    path("me/", accounts.MeView.as_view(), name="me"),
    path("stations/nearby/", stations.NearbyView.as_view(), name="stations-nearby"),
    path("stations/<int:station_id>/", stations.StationView.as_view(), name="station"),
    path("connectors/scan/", stations.ScanView.as_view(), name="connector-scan"),
    path("connectors/<int:connector_id>/", stations.ConnectorView.as_view(), name="connector"),
    path("connectors/<int:connector_id>/start/", charging.StartView.as_view(), name="start"),
    path("starts/<int:start_id>/", charging.StartStateView.as_view(), name="start-state"),
    path("sessions/", charging.SessionListView.as_view(), name="sessions"),
    path("sessions/current/", charging.CurrentSessionView.as_view(), name="session-current"),
    path("sessions/<int:session_id>/", charging.SessionView.as_view(), name="session"),
    path("sessions/<int:session_id>/stop/", charging.StopView.as_view(), name="session-stop"),
    path("bills/", charging.BillListView.as_view(), name="bills"),
    path("bills/<int:bill_id>/", charging.BillView.as_view(), name="bill"),
]

# The driver's money (driverapi.wallet); WeChat Pay notifies the two pay/ paths.
urlpatterns += [
    path("wallet/", wallet.WalletView.as_view(), name="wallet"),
    path("wallet/ledger/", wallet.LedgerView.as_view(), name="ledger"),
    path("wallet/recharges/", wallet.RechargesView.as_view(), name="recharges"),
    path("wallet/recharges/<int:pk>/", wallet.RechargeView.as_view(), name="recharge"),
    path("wallet/refunds/", wallet.RefundsView.as_view(), name="refunds"),
    path("invoices/", wallet.InvoicesView.as_view(), name="invoices"),
    path("invoices/<int:pk>/", wallet.InvoiceView.as_view(), name="invoice"),
    path("invoices/<int:pk>/link/", wallet.InvoiceLinkView.as_view(), name="invoice-link"),
    path(
        "invoices/download/<str:token>/",
        wallet.InvoiceDownloadView.as_view(),
        name="invoice-download",
    ),
    path("pay/wechat/notify", wallet.PayNotifyView.as_view(), name="wechat-pay-notify"),
    path(
        "pay/wechat/refund-notify",
        wallet.RefundNotifyView.as_view(),
        name="wechat-refund-notify",
    ),
]

# Reservations (driverapi.reservations): hold a connector while driving there.
urlpatterns += [
    path("reservations/", reservations.ReservationListView.as_view(), name="reservations"),
    path(
        "reservations/<int:reservation_id>",
        reservations.ReservationView.as_view(),
        name="reservation",
    ),
    path(
        "connectors/<int:connector_id>/reservation",
        reservations.ReserveView.as_view(),
        name="connector-reserve",
    ),
]
