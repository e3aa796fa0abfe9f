"""State machines declared once, as a table of allowed transitions.

Each stateful model (transfers, orders, assignments, commissions, payouts) declares
its table with `StateMachine({...})`; the one service that moves it locks the row,
calls `check`, writes the new state and an event row (who, when, from, to, why).
"""

from collections.abc import Iterable, Mapping

from django.utils.translation import gettext as _

from o2o.errors import Conflict


class IllegalTransition(Conflict):
    code = "illegal_transition"


class StateMachine:
    def __init__(self, transitions: Mapping[str, Iterable[str]]) -> None:
        self.transitions = {source: frozenset(targets) for source, targets in transitions.items()}

    def allowed_from(self, state: str) -> frozenset[str]:
        return self.transitions.get(state, frozenset())

    def can(self, source: str, target: str) -> bool:
        return target in self.allowed_from(source)

    def check(self, source: str, target: str) -> None:
        if not self.can(source, target):
            raise IllegalTransition(
                _("Cannot go from “%(source)s” to “%(target)s”.") % {"source": source, "target": target},
                details={"state": [source], "allowed": sorted(self.allowed_from(source))},
            )

    def is_final(self, state: str) -> bool:
        return not self.allowed_from(state)
