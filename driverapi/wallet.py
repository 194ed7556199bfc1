"""The driver's money: balance and ledger, WeChat Pay recharges, balance refund requests,
invoices, and WeChat Pay's notifications.

Every read is of the logged-in driver's own rows (`billing.selectors.member_*`); another
driver's row answers 404 like a missing one. Writes call one billing service each.
"""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import InvoiceRequest, InvoiceState, LedgerEntry, Recharge, RefundRequest
from billing.selectors import (
    member_invoices,
    member_ledger,
    member_recharges,
    member_refund_requests,
)
from billing.services.invoices import invoice_by_link, invoice_link_token, invoice_request_create
from billing.services.recharges import pay_notification_handle, recharge_create
from billing.services.refunds import (
    refund_notification_handle,
    refund_request_create,
    refundable_amount,
)
from billing.services.wallet import wallet_balance

MONEY = {"max_digits": 12, "decimal_places": 2}


class _Mine:
    """A list or detail of the logged-in driver's own rows: ``rows(member)`` selects them
    (the schema generator, with no driver, sees an empty queryset of ``model``)."""

    model = None
    rows = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()
        return type(self).rows(self.request.user.member)


# ---- balance and ledger -----------------------------------------------------------------


class WalletOut(serializers.Serializer):
    balance = serializers.DecimalField(**MONEY)
    refundable = serializers.DecimalField(
        **MONEY, help_text=_("What a balance refund may ask for now.")
    )


class WalletView(APIView):
    @extend_schema(responses=WalletOut, operation_id="wallet")
    def get(self, request):
        member = request.user.member
        return Response(
            WalletOut(
                {
                    "balance": wallet_balance(member=member),
                    "refundable": refundable_amount(member=member),
                }
            ).data
        )


class LedgerEntryOut(serializers.ModelSerializer):
    kind_label = serializers.CharField(source="get_kind_display")
    order_no = serializers.CharField(source="bill.order_no", default=None, allow_null=True)

    class Meta:
        model = LedgerEntry
        fields = ["id", "kind", "kind_label", "amount", "balance_after", "order_no", "created_at"]


class LedgerView(_Mine, generics.ListAPIView):
    """The wallet's movements, newest first (``?kind=recharge``)."""

    serializer_class = LedgerEntryOut
    filterset_fields = ["kind"]

    model = LedgerEntry
    rows = staticmethod(member_ledger)

    @extend_schema(operation_id="wallet_ledger")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# ---- recharges --------------------------------------------------------------------------


class RechargeOut(serializers.ModelSerializer):
    state_label = serializers.CharField(source="get_state_display")

    class Meta:
        model = Recharge
        fields = [
            "id",
            "out_trade_no",
            "amount",
            "state",
            "state_label",
            "created_at",
            "expires_at",
            "paid_at",
        ]


class RechargeIn(serializers.Serializer):
    amount = serializers.DecimalField(**MONEY)


class JsapiOut(serializers.Serializer):
    appId = serializers.CharField()  # WeChat's names
    timeStamp = serializers.CharField()
    nonceStr = serializers.CharField()
    package = serializers.CharField()
    signType = serializers.CharField()
    paySign = serializers.CharField()


class RechargeStartedOut(serializers.Serializer):
    recharge = RechargeOut()
    jsapi = JsapiOut(help_text=_("Hand to WeixinJSBridge getBrandWCPayRequest."))


class RechargesView(_Mine, generics.ListAPIView):
    """My recharges (``?state=paid``); POST opens a WeChat Pay order and answers what the
    page pays it with."""

    serializer_class = RechargeOut
    filterset_fields = ["state"]

    model = Recharge
    rows = staticmethod(member_recharges)

    @extend_schema(operation_id="recharges_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=RechargeIn, responses={201: RechargeStartedOut}, operation_id="recharge_create"
    )
    def post(self, request):
        data = RechargeIn(data=request.data)
        data.is_valid(raise_exception=True)
        started = recharge_create(member=request.user.member, amount=data.validated_data["amount"])
        return Response(
            RechargeStartedOut({"recharge": started.recharge, "jsapi": started.jsapi}).data,
            status=201,
        )


class RechargeView(_Mine, generics.RetrieveAPIView):
    """One of my recharges (the page polls it after paying)."""

    serializer_class = RechargeOut

    model = Recharge
    rows = staticmethod(member_recharges)

    @extend_schema(operation_id="recharge")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# ---- balance refunds --------------------------------------------------------------------


class RefundRequestOut(serializers.ModelSerializer):
    state_label = serializers.CharField(source="get_state_display")

    class Meta:
        model = RefundRequest
        fields = [
            "id",
            "amount",
            "reason",
            "state",
            "state_label",
            "rejection_reason",
            "created_at",
            "finished_at",
        ]


class RefundRequestIn(serializers.Serializer):
    amount = serializers.DecimalField(**MONEY)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True)


class RefundsView(_Mine, generics.ListAPIView):
    """My balance refund requests; POST asks for (part of) the balance back."""

    serializer_class = RefundRequestOut

    model = RefundRequest
    rows = staticmethod(member_refund_requests)

    @extend_schema(operation_id="refunds_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=RefundRequestIn, responses={201: RefundRequestOut}, operation_id="refund_request"
    )
    def post(self, request):
        data = RefundRequestIn(data=request.data)
        data.is_valid(raise_exception=True)
        refund = refund_request_create(
            member=request.user.member,
            amount=data.validated_data["amount"],
            reason=data.validated_data.get("reason", ""),
        )
        return Response(RefundRequestOut(refund).data, status=201)


# ---- invoices ---------------------------------------------------------------------------


class InvoiceOut(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    tax_number = serializers.CharField()
    email = serializers.EmailField()
    amount = serializers.DecimalField(**MONEY)
    state = serializers.CharField()
    state_label = serializers.CharField(source="get_state_display")
    rejection_reason = serializers.CharField()
    bill_ids = serializers.SerializerMethodField()
    recharge_ids = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_bill_ids(self, invoice) -> list[int]:
        return [i.bill_id for i in invoice.items.all() if i.bill_id]

    def get_recharge_ids(self, invoice) -> list[int]:
        return [i.recharge_id for i in invoice.items.all() if i.recharge_id]


class InvoiceIn(serializers.Serializer):
    bill_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    recharge_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    title = serializers.CharField(max_length=100)
    tax_number = serializers.CharField(max_length=20, required=False, allow_blank=True)
    email = serializers.CharField(max_length=254)


class InvoicesView(_Mine, generics.ListAPIView):
    """My invoice requests; POST asks for one over chosen paid bills and recharges."""

    serializer_class = InvoiceOut
    filterset_fields = ["state"]

    model = InvoiceRequest
    rows = staticmethod(member_invoices)

    @extend_schema(operation_id="invoices_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=InvoiceIn, responses={201: InvoiceOut}, operation_id="invoice_request")
    def post(self, request):
        data = InvoiceIn(data=request.data)
        data.is_valid(raise_exception=True)
        invoice = invoice_request_create(
            member=request.user.member,
            bill_ids=data.validated_data.get("bill_ids", []),
            recharge_ids=data.validated_data.get("recharge_ids", []),
            title=data.validated_data["title"],
            tax_number=data.validated_data.get("tax_number", ""),
            email=data.validated_data["email"],
        )
        return Response(
            InvoiceOut(member_invoices(request.user.member).get(pk=invoice.pk)).data, status=201
        )


class InvoiceView(_Mine, generics.RetrieveAPIView):
    serializer_class = InvoiceOut

    model = InvoiceRequest
    rows = staticmethod(member_invoices)

    @extend_schema(operation_id="invoice")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class InvoiceLinkOut(serializers.Serializer):
    url = serializers.CharField()
    expires_in = serializers.IntegerField(help_text=_("Seconds the link works."))


class InvoiceLinkView(APIView):
    """A short-lived download link of one of my issued invoices."""

    @extend_schema(request=None, responses=InvoiceLinkOut, operation_id="invoice_link")
    def post(self, request, pk: int):
        invoice = get_object_or_404(
            member_invoices(request.user.member).filter(state=InvoiceState.ISSUED), pk=pk
        )
        token = invoice_link_token(invoice=invoice)
        url = request.build_absolute_uri(reverse("driverapi:invoice-download", args=[token]))
        return Response(
            InvoiceLinkOut({"url": url, "expires_in": settings.INVOICE_LINK_SECONDS}).data
        )


class InvoiceDownloadView(APIView):
    """The PDF behind a link from `InvoiceLinkView` (the signed token is the permission)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(responses={(200, "application/pdf"): bytes}, operation_id="invoice_download")
    def get(self, request, token: str):
        invoice = invoice_by_link(token=token)
        return FileResponse(
            invoice.pdf.open("rb"),
            as_attachment=True,
            filename=f"invoice-{invoice.pk}.pdf",
            content_type="application/pdf",
        )


# ---- WeChat Pay notifications -------------------------------------------------------------


class _WeChatNotifyView(APIView):
    """WeChat Pay's servers POST here: no login (the signature is the proof) and no
    throttle (a refused notification is retried by WeChat, and the beat job queries)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = ()
    handle = None

    @extend_schema(
        request=inline_serializer("WeChatPayNotification", {"id": serializers.CharField()}),
        responses={204: None},
    )
    def post(self, request):
        self.handle(headers=dict(request.headers), body=request.body)
        return Response(status=204)


class PayNotifyView(_WeChatNotifyView):
    handle = staticmethod(pay_notification_handle)


class RefundNotifyView(_WeChatNotifyView):
    handle = staticmethod(refund_notification_handle)
