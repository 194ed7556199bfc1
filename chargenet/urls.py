from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chargenet.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # The live-sessions screen (protocol.live: it stops sessions on their piles); before
    # the admin's own URLs, whose catch-all would take admin/live/ for a missing page.
    path("admin/live/", include("protocol.live")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI from our static files (drf-spectacular-sidecar) and its set-up script as a
    # file of its own, so the Content-Security-Policy needs no CDN and no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("i18n/", include("django.conf.urls.i18n")),
    # Partner platforms (T/CEC 102): /evcs/v1/<operation>
    path("evcs/v1/", include("interconnect.urls")),
]

# The driver API (issue 12): the REST adapter the WeChat H5 pages call.
urlpatterns += [
    path("api/v1/", include("driverapi.urls")),
    path("h5/", include("driverapi.h5")),
]
handler404 = "chargenet.errors.page_not_found"
handler500 = "chargenet.errors.server_error"
