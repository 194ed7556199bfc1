import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_healthz_reports_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_openapi_schema_is_valid(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.read_text().startswith("openapi: 3.0.3")


def test_api_docs_load_swagger_from_our_static_files(client, settings):
    settings.CSP_ENABLED = True
    page = client.get("/api/docs/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "cdn" not in html.lower() and "<script>" not in html
    bundle = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    assert f'<script src="{bundle}">' in html
    nonce = page.wsgi_request.csp_nonce
    assert page["Content-Security-Policy"] == (
        f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )


def test_no_csp_header_when_switched_off(client, settings):
    settings.CSP_ENABLED = False
    assert "Content-Security-Policy" not in client.get("/healthz")
