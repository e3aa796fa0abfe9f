"""Rolling back each hypothesis example inside one pytest-django test.

pytest-django opens one transaction per test, but hypothesis runs many examples in
that test; each example runs inside a savepoint that is rolled back afterwards, so
no example sees the rows of another.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction


class _RollBack(Exception):
    pass


@contextmanager
def rolled_back() -> Iterator[None]:
    """Run the block in a savepoint and undo everything it wrote, pass or fail."""
    try:
        with transaction.atomic():
            yield
            raise _RollBack
    except _RollBack:
        pass
