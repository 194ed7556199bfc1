"""Constants of the code written into SQL text, for statements that are prepared.

The gateways prepare the statements they run again and again (`protocol.db`), and
PostgreSQL then plans a statement once for all its executions (a generic plan) only when
that plan is as cheap as one made for the values at hand; otherwise it plans it again on
every execution, which cost the gateway's PostgreSQL as much CPU as running the statements
did. A partial index whose predicate names a constant (the active states, a non-empty
protocol reference) serves a generic plan only when the statement says that constant in
its text: a parameter could be anything. So where a value is a constant of the code
(states, kinds), the hot statements write it as a literal, and leave parameters for
what comes from outside.
"""

from __future__ import annotations

from collections.abc import Iterable


def literal(value: str) -> str:
    """``value`` as an SQL string literal (standard-conforming strings, PostgreSQL's
    default since 9.1: only the quote is doubled). For constants of the code, never for
    input."""
    return "'" + str(value).replace("'", "''") + "'"


def literals(values: Iterable[str]) -> str:
    """``values`` as the list of an ``IN (…)``."""
    quoted = [literal(value) for value in values]
    if not quoted:
        raise ValueError("an IN list needs at least one value")
    return ", ".join(quoted)
