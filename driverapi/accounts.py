"""The driver's account: WeChat login, phone binding by texted code, who am I, log out."""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from chargenet.errors import DomainError
from integrations.sms import configured_sender
from integrations.wechat import WeChatError, configured_client
from orgs.drivers import (
    driver_operator,
    driver_phone_bind,
    driver_phone_code_send,
    driver_token_issue,
    driver_token_revoke,
    driver_wechat_login,
)
from orgs.models import Member

# WeChat's answers for a code that is unknown, expired or already used.
WECHAT_BAD_CODE = frozenset({40029, 40163, 41008})


class WeChatUnavailable(DomainError):
    code = "wechat_unavailable"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE


class MeOut(serializers.Serializer):
    id = serializers.IntegerField()
    nickname = serializers.CharField()
    phone = serializers.CharField(allow_null=True)
    phone_bound = serializers.BooleanField()
    operator = serializers.CharField()


def me_data(member: Member) -> dict:
    return MeOut(
        {
            "id": member.pk,
            "nickname": member.nickname,
            "phone": member.phone,
            "phone_bound": bool(member.phone),
            "operator": member.operator.name,
        }
    ).data


class LoginOut(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()
    me = MeOut()


def login_answer(member: Member) -> Response:
    issued = driver_token_issue(member=member)
    return Response(
        LoginOut({"token": issued.key, "expires_at": issued.expires_at, "me": me_data(member)}).data
    )


class WeChatLoginIn(serializers.Serializer):
    code = serializers.CharField(max_length=128)


class WeChatAuthorizeOut(serializers.Serializer):
    url = serializers.CharField()


class WeChatAuthorizeView(APIView):
    """Where the H5 page sends the browser to log in (WeChat's OAuth page)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(responses=WeChatAuthorizeOut, operation_id="wechat_authorize_url")
    def get(self, request):
        redirect_uri = request.build_absolute_uri(settings.DRIVER_H5_LOGIN_PATH)
        url = configured_client().oauth_authorize_url(
            redirect_uri=redirect_uri,
            state="h5",
            authorize_base=settings.WECHAT_OAUTH_AUTHORIZE_URL,
        )
        return Response({"url": url})


class WeChatLoginView(APIView):
    """Exchange the code WeChat's OAuth redirect gave the page for an API token."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(request=WeChatLoginIn, responses=LoginOut, operation_id="wechat_login")
    def post(self, request):
        data = WeChatLoginIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            identity = configured_client().oauth_identity(code=data.validated_data["code"])
        except WeChatError as exc:
            if exc.code in WECHAT_BAD_CODE:
                raise DomainError(
                    _("The WeChat login has expired; please open the page again."),
                    code="wechat_code_invalid",
                ) from None
            raise WeChatUnavailable(_("WeChat cannot be reached; please try again.")) from None
        member = driver_wechat_login(operator=driver_operator(), identity=identity)
        return login_answer(member)


class PhoneCodeIn(serializers.Serializer):
    phone = serializers.CharField(max_length=20)


class PhoneCodeView(APIView):
    """Text a verification code to the phone the driver wants to bind."""

    @extend_schema(request=PhoneCodeIn, responses={202: None}, operation_id="phone_code_send")
    def post(self, request):
        data = PhoneCodeIn(data=request.data)
        data.is_valid(raise_exception=True)
        driver_phone_code_send(
            member=request.user.member,
            phone=data.validated_data["phone"],
            sender=configured_sender(),
        )
        return Response(status=202)


class PhoneBindIn(serializers.Serializer):
    phone = serializers.CharField(max_length=20)
    code = serializers.CharField(max_length=10)


class PhoneBindView(APIView):
    """Bind the phone with its code. The answer carries a new token: the driver may now be
    the member that already had this number."""

    @extend_schema(request=PhoneBindIn, responses=LoginOut, operation_id="phone_bind")
    def post(self, request):
        data = PhoneBindIn(data=request.data)
        data.is_valid(raise_exception=True)
        member = driver_phone_bind(
            member=request.user.member,
            phone=data.validated_data["phone"],
            code=data.validated_data["code"],
        )
        return login_answer(member)


class MeView(APIView):
    @extend_schema(responses=MeOut, operation_id="me")
    def get(self, request):
        return Response(me_data(request.user.member))


class LogoutView(APIView):
    @extend_schema(request=None, responses={204: None}, operation_id="logout")
    def post(self, request):
        driver_token_revoke(member=request.user.member, key=request.auth)
        return Response(status=204)
