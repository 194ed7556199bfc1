"""Back office for drivers' money: WeChat Pay recharges, the balance refund approval queue
and the invoice queue (registered from `billing.admin`).

Lists and pages go through the `*_visible_to` selectors (scope); approving, rejecting and
issuing go through `billing.services.refunds` / `.invoices` (rules, audit), each click
answered with a message. Deciding on money is for operator-wide staff; sub-operator staff
only look.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from chargenet.admin import register_scope
from chargenet.errors import DomainError
from integrations.wechat.pay import WeChatPayError

from .admin import BillingAdmin, _operator_wide
from .models import (
    InvoiceItem,
    InvoiceRequest,
    InvoiceState,
    Recharge,
    RechargeRefund,
    RechargeRefundState,
    RechargeState,
    RefundRequest,
    RefundState,
)
from .selectors import invoices_visible_to, recharges_visible_to, refund_requests_visible_to
from .services.invoices import invoice_issue, invoice_reject
from .services.recharges import recharge_reconcile
from .services.refunds import (
    AbnormalAction,
    refund_abnormal_resolve,
    refund_request_approve,
    refund_request_reject,
)

register_scope(Recharge, recharges_visible_to)
register_scope(RefundRequest, refund_requests_visible_to)
register_scope(InvoiceRequest, invoices_visible_to)
register_scope(
    RechargeRefund,
    lambda user: RechargeRefund.objects.filter(
        request__in=refund_requests_visible_to(user).values("pk")
    ),
)
register_scope(
    InvoiceItem,
    lambda user: InvoiceItem.objects.filter(invoice__in=invoices_visible_to(user).values("pk")),
)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("reason (the driver reads it)"), max_length=200, widget=forms.Textarea
    )

    def plain_fields(self):
        return [self[name] for name in self.fields]


class NoteForm(forms.Form):
    note = forms.CharField(
        label=_("what was done (for the record)"), max_length=200, widget=forms.Textarea
    )

    def plain_fields(self):
        return [self[name] for name in self.fields]


class ConfirmForm(forms.Form):
    """A POST that only confirms (the page says what will happen)."""

    def plain_fields(self):
        return []


class InvoicePdfForm(forms.Form):
    pdf = forms.FileField(label=_("invoice PDF"), help_text=_("The issued invoice, at most 10 MB."))

    def plain_fields(self):
        return [self[name] for name in self.fields]


class _ReadOnly(BillingAdmin):
    """Rows change only through services: no add, no edit form, pages to look at."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def _decidable(self, request, model_admin_qs, object_id):
        """The object, if this staff member may decide on it (else 404, like absent)."""
        decides = request.user.has_perm(f"billing.change_{self.model._meta.model_name}")
        if not (decides and _operator_wide(request.user)):
            raise PermissionDenied
        return get_object_or_404(model_admin_qs, pk=object_id)

    def _url(self, name: str, obj) -> str:
        return reverse(f"admin:billing_{self.model._meta.model_name}_{name}", args=[obj.pk])


# ---- recharges ---------------------------------------------------------------------------


@admin.register(Recharge)
class RechargeAdmin(_ReadOnly):
    list_display = (
        "out_trade_no",
        "member",
        "amount",
        "state",
        "channel",
        "created_at",
        "paid_at",
        "transaction_id",
    )
    list_filter = ("state", "channel", ("created_at", admin.DateFieldListFilter))
    date_hierarchy = "created_at"
    search_fields = ("=out_trade_no", "=transaction_id", "member__phone")
    list_select_related = ("member",)
    fields = (
        "out_trade_no",
        "member",
        "channel",
        "amount",
        "state",
        "transaction_id",
        "created_at",
        "expires_at",
        "paid_at",
        "closed_at",
        "checked_at",
        "failure",
    )
    readonly_fields = fields
    actions = ["reconcile"]

    @admin.action(description=_("Ask WeChat Pay now about the selected pending recharges"))
    def reconcile(self, request, queryset):
        pending = list(
            queryset.filter(state=RechargeState.PENDING).values_list("pk", flat=True)[:50]
        )
        outcomes: dict[str, int] = {}
        try:
            for recharge_id in pending:
                outcome = recharge_reconcile(recharge_id=recharge_id)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        except WeChatPayError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        labels = {
            "paid": _("paid and credited"),
            "closed": _("closed"),
            "failed": _("failed"),
            "pending": _("still awaiting payment"),
            "skipped": _("being checked by another worker"),
        }
        summary = "; ".join(f"{labels[k]}: {n}" for k, n in sorted(outcomes.items()))
        self.message_user(
            request,
            _("%(count)s pending recharges asked about. %(summary)s")
            % {"count": len(pending), "summary": summary or "—"},
            messages.SUCCESS,
        )


# ---- balance refunds ---------------------------------------------------------------------


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RechargeRefundInline(_ReadOnlyInline):
    model = RechargeRefund
    fields = ("out_refund_no", "recharge", "amount", "state", "refund_id", "attempts", "failure")
    readonly_fields = fields


class NeedsStaffFilter(admin.SimpleListFilter):
    """Requests with a WeChat refund reported abnormal: the driver's money is stuck until
    staff act."""

    title = _("needs staff")
    parameter_name = "needs_staff"

    def lookups(self, request, model_admin):
        return [("abnormal", _("WeChat refund abnormal"))]

    def queryset(self, request, queryset):
        if self.value() == "abnormal":
            return queryset.filter(refunds__state=RechargeRefundState.ABNORMAL).distinct()
        return queryset


# What staff may do with an abnormal WeChat refund: (label, what the page says).
ABNORMAL_ACTIONS = {
    AbnormalAction.RETRY: (
        _("Ask WeChat again"),
        _(
            "WeChat Pay is asked about this refund now (after you fixed it in WeChat Pay's "
            "merchant platform, it finishes as refunded)."
        ),
    ),
    AbnormalAction.HANDLED: (
        _("Handled outside WeChat"),
        _(
            "The driver got %(amount)s yuan another way (e.g. bank transfer); the refund "
            "ends as handled. The wallet does not change."
        ),
    ),
    AbnormalAction.TO_WALLET: (
        _("Back to the wallet"),
        _("%(amount)s yuan go back into the driver's wallet; the refund ends as closed."),
    ),
}


@admin.register(RefundRequest)
class RefundRequestAdmin(_ReadOnly):
    list_display = (
        "id",
        "member",
        "amount",
        "state",
        "created_at",
        "decided_by",
        "decide_links",
        "abnormal_links",
    )
    list_filter = ("state", NeedsStaffFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = ("member__phone", "member__nickname")
    list_select_related = ("member", "decided_by")
    fields = (
        "member",
        "amount",
        "reason",
        "state",
        "created_at",
        "decided_by",
        "decided_at",
        "rejection_reason",
        "finished_at",
        "decide_links",
        "abnormal_links",
    )
    readonly_fields = fields
    inlines = [RechargeRefundInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("refunds")

    @admin.display(description=_("abnormal WeChat refunds"))
    def abnormal_links(self, refund_request):
        abnormal = [
            r for r in refund_request.refunds.all() if r.state == RechargeRefundState.ABNORMAL
        ]
        if not abnormal:
            return "—"
        return format_html_join(
            format_html("<br>"),
            '<strong class="errornote-inline">{} {}</strong> {}',
            (
                (
                    _("Abnormal:"),
                    f"{part.out_refund_no} ({part.amount})",
                    format_html_join(
                        " ",
                        '<a class="button" href="{}">{}</a>',
                        (
                            (
                                reverse(
                                    "admin:billing_refundrequest_abnormal",
                                    args=[refund_request.pk, part.pk, action],
                                ),
                                label,
                            )
                            for action, (label, _said) in ABNORMAL_ACTIONS.items()
                        ),
                    ),
                )
                for part in abnormal
            ),
        )

    def abnormal_view(self, request, object_id, refund_id, action):
        refund_request = self._decidable(request, self.get_queryset(request), object_id)
        part = get_object_or_404(
            RechargeRefund, pk=refund_id, request=refund_request, state=RechargeRefundState.ABNORMAL
        )
        if action not in ABNORMAL_ACTIONS:
            raise Http404
        label, said = ABNORMAL_ACTIONS[action]
        form_class = ConfirmForm if action == AbnormalAction.RETRY else NoteForm
        form = form_class(request.POST if request.method == "POST" else None)

        def act(form):
            line = refund_abnormal_resolve(
                refund=part,
                action=action,
                note=form.cleaned_data.get("note", ""),
                actor=request.user,
            )
            return (
                reverse("admin:billing_refundrequest_change", args=[refund_request.pk]),
                _("Refund %(no)s is now: %(state)s.")
                % {"no": line.out_refund_no, "state": line.get_state_display()},
            )

        return self.service_form(
            request,
            form,
            title=_("Abnormal WeChat refund %(no)s of %(member)s")
            % {"no": part.out_refund_no, "member": refund_request.member},
            intro=said % {"amount": part.amount},
            submit_label=label,
            on_valid=act,
        )

    actions = ["approve"]

    @admin.display(description=_("decision"))
    def decide_links(self, refund):
        if refund.state != RefundState.REQUESTED:
            return "—"
        return format_html(
            '<a class="button" href="{}">{}</a> <a class="button" href="{}">{}</a>',
            self._url("approve", refund),
            _("Approve"),
            self._url("reject", refund),
            _("Reject"),
        )

    def get_urls(self):
        return [
            path(
                "<int:object_id>/approve/",
                self.admin_site.admin_view(self.approve_view),
                name="billing_refundrequest_approve",
            ),
            path(
                "<int:object_id>/reject/",
                self.admin_site.admin_view(self.reject_view),
                name="billing_refundrequest_reject",
            ),
            path(
                "<int:object_id>/refunds/<int:refund_id>/<str:action>/",
                self.admin_site.admin_view(self.abnormal_view),
                name="billing_refundrequest_abnormal",
            ),
            *super().get_urls(),
        ]

    @admin.action(description=_("Approve the selected refund requests (refund through WeChat Pay)"))
    def approve(self, request, queryset):
        if not (
            request.user.has_perm("billing.change_refundrequest") and _operator_wide(request.user)
        ):
            self.message_user(
                request, _("Only operator-wide staff decide on refunds."), messages.ERROR
            )
            return
        done = 0
        for refund in queryset.filter(state=RefundState.REQUESTED).order_by("pk"):
            try:
                refund_request_approve(refund_request=refund, actor=request.user)
            except DomainError as error:
                self.message_user(request, f"#{refund.pk}: {error}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(
                request,
                ngettext(
                    "%(count)d refund approved; WeChat Pay is refunding it.",
                    "%(count)d refunds approved; WeChat Pay is refunding them.",
                    done,
                )
                % {"count": done},
                messages.SUCCESS,
            )

    def approve_view(self, request, object_id):
        refund = self._decidable(request, self.get_queryset(request), object_id)
        form = ConfirmForm(request.POST or None)

        def approve(form):
            refund_request_approve(refund_request=refund, actor=request.user)
            return (
                reverse("admin:billing_refundrequest_change", args=[refund.pk]),
                _("Approved: %(amount)s yuan leave the wallet and WeChat Pay refunds them.")
                % {"amount": refund.amount},
            )

        return self.service_form(
            request,
            form,
            title=_("Approve the balance refund of %(member)s") % {"member": refund.member},
            intro=_("%(amount)s yuan go back through WeChat Pay, taken from the wallet now.")
            % {"amount": refund.amount},
            submit_label=_("Approve"),
            on_valid=approve,
        )

    def reject_view(self, request, object_id):
        refund = self._decidable(request, self.get_queryset(request), object_id)
        form = ReasonForm(request.POST or None)

        def reject(form):
            refund_request_reject(
                refund_request=refund, reason=form.cleaned_data["reason"], actor=request.user
            )
            return (
                reverse("admin:billing_refundrequest_changelist"),
                _("Rejected; the driver sees your reason."),
            )

        return self.service_form(
            request,
            form,
            title=_("Reject the balance refund of %(member)s") % {"member": refund.member},
            intro=_("%(amount)s yuan; nothing leaves the wallet.") % {"amount": refund.amount},
            submit_label=_("Reject"),
            on_valid=reject,
        )


# ---- invoices ----------------------------------------------------------------------------


class InvoiceItemInline(_ReadOnlyInline):
    model = InvoiceItem
    fields = ("bill", "recharge", "amount", "active")
    readonly_fields = fields


@admin.register(InvoiceRequest)
class InvoiceRequestAdmin(_ReadOnly):
    list_display = (
        "id",
        "member",
        "title",
        "tax_number",
        "amount",
        "state",
        "created_at",
        "handle_links",
    )
    list_filter = ("state", ("created_at", admin.DateFieldListFilter))
    search_fields = ("title", "tax_number", "member__phone", "email")
    list_select_related = ("member",)
    fields = (
        "member",
        "title",
        "tax_number",
        "email",
        "amount",
        "state",
        "created_at",
        "decided_by",
        "decided_at",
        "rejection_reason",
        "pdf_link",
        "handle_links",
    )
    readonly_fields = fields
    inlines = [InvoiceItemInline]

    @admin.display(description=_("invoice PDF"))
    def pdf_link(self, invoice):
        if not invoice.pdf:
            return "—"
        return format_html('<a href="{}">{}</a>', self._url("pdf", invoice), _("Download"))

    @admin.display(description=_("handling"))
    def handle_links(self, invoice):
        if invoice.state != InvoiceState.REQUESTED:
            return "—"
        return format_html_join(
            " ",
            '<a class="button" href="{}">{}</a>',
            [
                (self._url("issue", invoice), _("Upload PDF and issue")),
                (self._url("reject", invoice), _("Reject")),
            ],
        )

    def get_urls(self):
        return [
            path(
                "<int:object_id>/issue/",
                self.admin_site.admin_view(self.issue_view),
                name="billing_invoicerequest_issue",
            ),
            path(
                "<int:object_id>/reject/",
                self.admin_site.admin_view(self.reject_view),
                name="billing_invoicerequest_reject",
            ),
            path(
                "<int:object_id>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="billing_invoicerequest_pdf",
            ),
            *super().get_urls(),
        ]

    def issue_view(self, request, object_id):
        invoice = self._decidable(request, self.get_queryset(request), object_id)
        form = InvoicePdfForm(request.POST or None, request.FILES or None)

        def issue(form):
            invoice_issue(invoice=invoice, pdf=form.cleaned_data["pdf"], actor=request.user)
            return (
                reverse("admin:billing_invoicerequest_changelist"),
                _("Issued; the driver can download the invoice now."),
            )

        return self.service_form(
            request,
            form,
            title=_("Issue invoice #%(id)s") % {"id": invoice.pk},
            intro=_("%(title)s, tax number %(tax)s, %(amount)s yuan, to %(email)s.")
            % {
                "title": invoice.title,
                "tax": invoice.tax_number or "—",
                "amount": invoice.amount,
                "email": invoice.email,
            },
            submit_label=_("Upload PDF and issue"),
            on_valid=issue,
        )

    def reject_view(self, request, object_id):
        invoice = self._decidable(request, self.get_queryset(request), object_id)
        form = ReasonForm(request.POST or None)

        def reject(form):
            invoice_reject(invoice=invoice, reason=form.cleaned_data["reason"], actor=request.user)
            return (
                reverse("admin:billing_invoicerequest_changelist"),
                _("Rejected; the driver sees your reason."),
            )

        return self.service_form(
            request,
            form,
            title=_("Reject invoice request #%(id)s") % {"id": invoice.pk},
            submit_label=_("Reject"),
            on_valid=reject,
        )

    def pdf_view(self, request, object_id):
        invoice = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not invoice.pdf:
            raise Http404(_("Not found."))
        return FileResponse(
            invoice.pdf.open("rb"), as_attachment=True, filename=f"invoice-{invoice.pk}.pdf"
        )
