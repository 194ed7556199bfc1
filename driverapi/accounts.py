"""The driver's own account: who am I, log out."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from orgs.drivers import driver_token_revoke


class MeOut(serializers.Serializer):
    id = serializers.IntegerField()
    nickname = serializers.CharField()
    phone = serializers.CharField(allow_null=True)
    phone_bound = serializers.BooleanField()
    operator = serializers.CharField(source="operator.name")


def me_data(member) -> dict:
    return MeOut(
        {
            "id": member.pk,
            "nickname": member.nickname,
            "phone": member.phone,
            "phone_bound": bool(member.phone),
            "operator": member.operator,
        }
    ).data


class MeView(APIView):
    @extend_schema(responses=MeOut, operation_id="me")
    def get(self, request):
        return Response(me_data(request.user.member))


class LogoutView(APIView):
    @extend_schema(request=None, responses={204: None}, operation_id="logout")
    def post(self, request):
        driver_token_revoke(member=request.user.member, key=request.auth)
        return Response(status=204)
