"""The partner page of the back office: each partner's interconnection (switch, published
stations, spelling; new credentials shown once), its message log (decoded requests and
answers, searchable like the protocol log), its orders, its push queue with attempts, and
its reconciliations. Everything through the `*_visible_to` selectors."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from chargenet.admin import ReadOnlyAdminMixin, ScopedModelAdmin, filtered_list_link, register_scope
from orgs.models import PartnerAccess
from orgs.services import partner_access_set

from . import selectors
from .models import Interconnection, Message, PartnerOrder, Push, PushState, Reconciliation
from .services.partners import (
    interconnection_credentials_renew,
    publishable_stations,
    stations_newly_published,
)
from .services.pushes import pushes_retry

register_scope(Interconnection, selectors.interconnections_visible_to)
register_scope(PartnerOrder, selectors.partner_orders_visible_to)
register_scope(Push, selectors.pushes_visible_to)
register_scope(Message, selectors.partner_messages_visible_to)
register_scope(Reconciliation, selectors.reconciliations_visible_to)


def _pretty(value) -> str:
    if value is None:
        return "-"
    text = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)
    return format_html("<pre style='white-space:pre-wrap'>{}</pre>", text)


@admin.register(Interconnection)
class InterconnectionAdmin(ScopedModelAdmin):
    """Created by ``manage.py partner_add`` (it prints the credentials once); here staff
    switch it, choose its published stations and spelling, and issue new credentials."""

    list_display = (
        "partner",
        "operator_id_wire",
        "enabled",
        "station_count",
        "pushes_pending",
        "base_url",
        "credentials_issued_at",
    )
    list_select_related = ("partner", "operator")
    search_fields = ("partner__name", "=operator_id_wire")
    fields = (
        "partner",
        "operator",
        "operator_id_wire",
        "push_operator_id",
        "base_url",
        "spells_sevice",
        "key_case",
        "stations",
        "credentials_issued_at",
        "links",
    )
    readonly_fields = (
        "partner",
        "operator",
        "operator_id_wire",
        "push_operator_id",
        "credentials_issued_at",
        "links",
    )
    filter_horizontal = ("stations",)
    actions = ["switch_on", "switch_off", "credentials_renew"]

    def has_add_permission(self, request):
        return False  # manage.py partner_add: the credentials are printed there, once

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        pending = Count("pushes", filter=Q(pushes__state=PushState.PENDING), distinct=True)
        return (
            super()
            .get_queryset(request)
            .annotate(n_stations=Count("stations", distinct=True), n_pending=pending)
        )

    def save_related(self, request, form, formsets, change):
        before = set(form.instance.stations.values_list("pk", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        stations_newly_published(link=form.instance, before=before)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "stations":
            object_id = request.resolver_match.kwargs.get("object_id")
            link = self.get_object(request, object_id) if object_id else None
            # Only stations that may be published (a published pile with its powers).
            kwargs["queryset"] = (
                publishable_stations(link.operator)
                if link
                else db_field.related_model.objects.none()
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description=_("switched on"), boolean=True)
    def enabled(self, obj):
        return PartnerAccess.objects.filter(
            partner_id=obj.partner_id, operator_id=obj.operator_id, enabled=True
        ).exists()

    @admin.display(description=_("published stations"), ordering="n_stations")
    def station_count(self, obj):
        return obj.n_stations

    @admin.display(description=_("pushes pending"), ordering="n_pending")
    def pushes_pending(self, obj):
        return filtered_list_link("interconnect_push", "interconnection", obj.pk, obj.n_pending)

    @admin.display(description=_("records"))
    def links(self, obj):
        return format_html(
            "{} · {} · {} · {}",
            filtered_list_link("interconnect_message", "interconnection", obj.pk, _("message log")),
            filtered_list_link("interconnect_partnerorder", "interconnection", obj.pk, _("orders")),
            filtered_list_link("interconnect_push", "interconnection", obj.pk, _("push queue")),
            filtered_list_link(
                "interconnect_reconciliation", "interconnection", obj.pk, _("reconciliations")
            ),
        )

    def _switch(self, request, queryset, enabled: bool):
        names = []
        for link in queryset.select_related("partner", "operator"):
            partner_access_set(
                partner=link.partner, operator=link.operator, enabled=enabled, actor=request.user
            )
            names.append(str(link.partner))
        if enabled:
            text = _("Switched on: %(names)s. Takes effect at once.")
        else:
            text = _(
                "Switched off: %(names)s. New starts are refused and stations hidden; "
                "sessions under way still settle and are pushed."
            )
        self.message_user(request, text % {"names": ", ".join(names)}, messages.SUCCESS)

    @admin.action(permissions=["change"], description=_("Switch on"))
    def switch_on(self, request, queryset):
        self._switch(request, queryset, True)

    @admin.action(permissions=["change"], description=_("Switch off"))
    def switch_off(self, request, queryset):
        self._switch(request, queryset, False)

    @admin.action(
        permissions=["change"], description=_("Issue new credentials (shown once, old ones stop)")
    )
    def credentials_renew(self, request, queryset):
        for link in queryset:
            credentials = interconnection_credentials_renew(link=link, actor=request.user)
            self.message_user(
                request,
                format_html(
                    "{}<pre style='white-space:pre-wrap'>{}</pre>",
                    _("New credentials of %(partner)s — copy them now, they are not shown again:")
                    % {"partner": link.partner},
                    json.dumps(credentials.as_wire(), ensure_ascii=False, indent=2),
                ),
                messages.WARNING,
            )


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    """Search by StartChargeSeq, OperatorID or operation; filter by direction, answer code,
    partner and time. Secrets (OperatorSecret, tokens) are never stored."""

    list_display = (
        "at",
        "direction",
        "operation",
        "operator_id_wire",
        "start_charge_seq",
        "ret",
        "error",
        "short_request",
    )
    list_filter = (
        "direction",
        "ret",
        "operation",
        "interconnection",
        ("at", admin.DateFieldListFilter),
    )
    search_fields = ("=start_charge_seq", "=operator_id_wire", "operation")
    date_hierarchy = "at"
    show_full_result_count = False
    list_per_page = 100
    list_select_related = ("interconnection__partner",)
    fields = (
        "at",
        "interconnection",
        "direction",
        "operation",
        "operator_id_wire",
        "seq",
        "start_charge_seq",
        "ret",
        "error",
        "push",
        "request_decoded",
        "answer_decoded",
    )
    readonly_fields = fields

    @admin.display(description=_("request"))
    def short_request(self, obj):
        return json.dumps(obj.request, ensure_ascii=False)[:120] if obj.request else ""

    @admin.display(description=_("request (decoded)"))
    def request_decoded(self, obj):
        return _pretty(obj.request)

    @admin.display(description=_("answer (decoded)"))
    def answer_decoded(self, obj):
        return _pretty(obj.answer)


@admin.register(PartnerOrder)
class PartnerOrderAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = (
        "start_charge_seq",
        "interconnection",
        "connector",
        "session",
        "state",
        "confirm_result",
        "confirmed_at",
        "created_at",
    )
    list_filter = ("state", "interconnection", ("created_at", admin.DateFieldListFilter))
    search_fields = ("=start_charge_seq", "=session__order_no", "=tag")
    list_select_related = ("interconnection__partner", "connector__pile", "session")
    readonly_fields = [f.name for f in PartnerOrder._meta.fields]


@admin.register(Push)
class PushAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    """The push queue: each notification with its attempts, its last error and the
    partner's answer; "retry now" for the stuck ones."""

    list_display = (
        "created_at",
        "interconnection",
        "operation",
        "key",
        "state",
        "attempts",
        "next_at",
        "last_error",
        "delivered_at",
    )
    list_filter = ("state", "operation", "interconnection")
    search_fields = ("=order__start_charge_seq", "=key")
    list_select_related = ("interconnection__partner",)
    fields = (
        "interconnection",
        "operation",
        "key",
        "order",
        "state",
        "attempts",
        "next_at",
        "last_error",
        "delivered_at",
        "created_at",
        "data_decoded",
        "answer_decoded",
        "attempt_log",
    )
    readonly_fields = fields
    actions = ["retry_now"]

    def has_retry_permission(self, request):
        return request.user.has_perm("interconnect.view_push") and (
            request.user.is_superuser or request.user.operator_id is not None
        )

    @admin.action(permissions=["retry"], description=_("Retry now"))
    def retry_now(self, request, queryset):
        count = pushes_retry(
            push_ids=list(queryset.values_list("pk", flat=True)), actor=request.user
        )
        self.message_user(
            request,
            _("%(n)d pushes will be attempted again at once (delivered ones are left alone).")
            % {"n": count},
            messages.SUCCESS,
        )

    @admin.display(description=_("data"))
    def data_decoded(self, obj):
        return _pretty(obj.data)

    @admin.display(description=_("partner's answer"))
    def answer_decoded(self, obj):
        return _pretty(obj.answer)

    @admin.display(description=_("attempts"))
    def attempt_log(self, obj):
        return filtered_list_link("interconnect_message", "push", obj.pk, obj.messages.count())


@admin.register(Reconciliation)
class ReconciliationAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = (
        "day",
        "interconnection",
        "order_count",
        "total_power",
        "total_money",
        "dispute_count",
        "checked_at",
    )
    list_filter = ("interconnection", ("day", admin.DateFieldListFilter))
    list_select_related = ("interconnection__partner",)
    fields = (
        "day",
        "interconnection",
        "check_order_seq",
        "order_count",
        "total_power",
        "total_money",
        "checked_at",
        "push",
        "disputes_decoded",
    )
    readonly_fields = fields

    @admin.display(description=_("disputed orders"))
    def dispute_count(self, obj):
        return len(obj.disputes or [])

    @admin.display(description=_("disputed orders"))
    def disputes_decoded(self, obj):
        return _pretty(obj.disputes)
