"""`bulk_insert` writes every column and gives each object its own primary key."""

import pytest

from chargenet.bulk import bulk_insert
from orgs.models import Operator


@pytest.mark.django_db
def test_bulk_insert_sets_each_objects_own_key():
    operators = [Operator(code=f"op-{n}", name=f"Operator {n}") for n in range(5)]
    bulk_insert(operators, unique_field="code")
    stored = dict(Operator.objects.values_list("code", "pk"))
    assert {op.code: op.pk for op in operators} == stored
    assert len(set(stored.values())) == 5
    assert [op._state.adding for op in operators] == [False] * 5
