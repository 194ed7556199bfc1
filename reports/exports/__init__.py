"""Exports of every report, the bills list and the live-sessions screen: Excel (openpyxl
write-only, streamed) and CSV, scoped exactly like the screen they come from.

How a report exports (the contract between the report pages and this package):

1. Make the report a `tabular.Tabular`: ``slug``, ``title`` (lazy, Chinese in zh-hans),
   ``columns`` (`tabular.Column(key, title, kind)`, kind one of "text", "int", "yuan",
   "kwh", "percent", "date", "datetime"), ``rows()`` (an iterator of tuples in column
   order, streamed: use ``.iterator()`` on big querysets), ``totals()`` (a tuple or None)
   and ``filters_used()`` ([(label, value)] for the filters sheet). Optional: ``count()``
   (rows in all, for the progress of a queued export) and ``filter_values`` (a JSON-able
   dict; without it the request's query string is kept).
2. Register how a worker builds it again, once at import time (e.g. in your admin module):
   ``registry.tabular_register("daily", lambda *, staff, filters: DailyReport(...))``.
   ``filters`` is the dict of step 1 (``filter_values`` or ``{name: [values]}`` of the
   query string); ``staff`` the person who asked (scope!).
3. In the view: ``return admin.export_response(request, tabular, fmt="xlsx")`` (or
   "csv"). Up to ``settings.EXPORTS_INLINE_MAX_ROWS`` rows download at once; more queue a
   Celery job (`reports.tasks.export_job_run_task`) whose progress and download link are
   on "My exports" (`admin:exports_exportjob_changelist`).

A ModelAdmin list (the bills) exports through `chargenet.admin.ChangelistExportMixin`:
`changelists.py` makes its changelist — the same queryset the screen shows — a Tabular.
"""
