"""Drive the admin as a browser would: sign in on English pages, post a page back with
every field (and every inline's management form) as the page shows it and the test's
changes on top, and read what the page answered (form errors, messages)."""

from __future__ import annotations

from django.contrib.messages import get_messages


def signed_in(client, staff):
    """The test client on English pages, signed in as ``staff``."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(staff)
    return client


def _field_value(bound_field):
    value = bound_field.value()
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else None
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return str(value)


def _form_data(form, data: dict) -> None:
    for name in form.fields:
        value = _field_value(form[name])
        if value is not None:
            data[form.add_prefix(name)] = value


def page_data(response, **changes) -> dict:
    """Data of the admin change/add page in ``response``; ``changes`` override fields
    (``None`` removes one, e.g. an unticked checkbox). Inline fields are named
    ``<prefix>-<n>-<field>``, as in the page."""
    ctx = response.context
    data: dict = {}
    _form_data(ctx["adminform"].form, data)
    for inline in ctx["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = str(management[name].value())
        for form in formset.forms:
            _form_data(form, data)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def form_errors(response) -> list[str]:
    """All error texts on a re-rendered admin page (form and inlines)."""
    ctx = response.context
    errors = [str(e) for errs in ctx["adminform"].form.errors.values() for e in errs]
    for inline in ctx["inline_admin_formsets"]:
        errors += [str(e) for e in inline.formset.non_form_errors()]
        for form_errors_ in inline.formset.errors:
            errors += [str(e) for errs in form_errors_.values() for e in errs]
    return errors


def admin_messages(response) -> list[str]:
    """The success/error messages the admin showed for ``response``."""
    return [str(m) for m in get_messages(response.wsgi_request)]
