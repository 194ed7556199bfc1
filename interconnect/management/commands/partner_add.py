"""``manage.py partner_add --name NAME --operator-id ID --base-url URL [--disabled]``

Creates a partner platform's T/CEC 102 interconnection with the operator (switched on
unless ``--disabled``; publishing the operator's publishable stations) and prints, once,
its credentials as one JSON object: the five values for its calls to us, and under
``Push`` the five for our calls to it. They are never shown again (stored sealed or
hashed); the partner page can issue new ones.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from chargenet.errors import DomainError
from orgs.models import Operator

from ...services.partners import interconnection_create


class Command(BaseCommand):
    help = "Create a T/CEC 102 partner and print its credentials once (JSON)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="the partner's name, e.g. 滴滴")
        parser.add_argument("--operator-id", required=True, help="the partner's OperatorID")
        parser.add_argument("--base-url", required=True, help="where we push, …/evcs/v1")
        parser.add_argument("--disabled", action="store_true", help="create it switched off")
        parser.add_argument(
            "--operator", help="our operator's code (needed only when there are several)"
        )

    def handle(self, *args, **options):
        operators = Operator.objects.all()
        if options["operator"]:
            operators = operators.filter(code=options["operator"])
        if operators.count() != 1:
            raise CommandError("name the operator with --operator CODE (none or several match)")
        try:
            _link, credentials = interconnection_create(
                name=options["name"],
                operator_id_wire=options["operator_id"],
                base_url=options["base_url"],
                enabled=not options["disabled"],
                operator=operators.get(),
            )
        except DomainError as exc:
            raise CommandError(str(exc.message)) from exc
        self.stdout.write(json.dumps(credentials.as_wire(), ensure_ascii=False))
