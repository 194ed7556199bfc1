"""The back office speaks zh-hans by default and English on request, from committed .mo files."""

import pytest
from django.utils import translation

from stations.models import Connector, Pile


@pytest.mark.parametrize(
    ("language", "pile", "connector"),
    [("zh-hans", "充电桩", "充电枪"), ("en", "pile", "connector")],
)
def test_model_labels_are_translated(language, pile, connector):
    with translation.override(language):
        assert str(Pile._meta.verbose_name) == pile
        assert str(Connector._meta.verbose_name) == connector


@pytest.mark.django_db
def test_admin_login_page_defaults_to_chinese(client):
    response = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="")
    assert response.status_code == 200
    assert response["Content-Language"] == "zh-hans"
