"""Tabulars by slug, so a Celery worker can build again the one a person asked for.

A job keeps the slug, the staff member and the filter values; the worker calls the
registered factory with them: ``factory(staff=<Staff>, filters=<dict>) -> Tabular``.
``filters`` is what the page had: `export_response` stores ``tabular.filter_values`` when
the tabular has that attribute (a JSON-able dict), else the request's query string as
``{name: [values]}`` (a QueryDict's lists, the export's own parameters left out). The
factory must build the SAME rows for the same staff and filters: scope included.
"""

from __future__ import annotations

from collections.abc import Callable

from .tabular import Tabular

Factory = Callable[..., Tabular]
_FACTORIES: dict[str, Factory] = {}


def tabular_register(slug: str, factory: Factory) -> None:
    """Declare how to build the tabular ``slug`` from ``staff`` and ``filters``."""
    _FACTORIES[slug] = factory


def tabular_is_registered(slug: str) -> bool:
    return slug in _FACTORIES


def tabular_build(slug: str, *, staff, filters: dict) -> Tabular:
    """The tabular ``slug`` for ``staff`` with ``filters`` (KeyError: not registered)."""
    return _FACTORIES[slug](staff=staff, filters=filters)
