"""Pages of the ERP API: the project's page sizes, but a size beyond the cap is refused, not shrunk.

An integrator asking for 1000 rows and silently getting 200 would think it had everything, so
`page_size` above the cap is 422 `page_size_too_large`. A number that is not a positive whole number,
including one left empty (`?page_size=`, `?page=`), is 400 `invalid`: the schema says integer, and
an empty value most often means a template in the caller's code that was never filled in.
"""

import re

from django.utils.translation import gettext as _

from o2o.api.pagination import PageNumberPagination
from o2o.errors import ApplicationError

_WHOLE = re.compile(r"[0-9]{1,9}")


def positive_int(raw: str, *, name: str, cap: int | None = None) -> int:
    """`raw` from a query string as a whole number of at least 1 (and at most `cap`), or a 4xx."""
    if not _WHOLE.fullmatch(raw) or int(raw) < 1:
        raise ApplicationError(
            _("{name} must be a positive whole number.").format(name=name),
            code="invalid",
            details={name: [raw[:20]]},
        )
    value = int(raw)
    if cap is not None and value > cap:
        raise ApplicationError(
            _("{name} may be at most {limit}.").format(name=name, limit=cap),
            code="page_size_too_large",
            status=422,
            details={name: [_("At most {limit}.").format(limit=cap)]},
        )
    return value


class CappedPagination(PageNumberPagination):
    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        return positive_int(raw, name=self.page_size_query_param, cap=self.max_page_size)

    def get_page_number(self, request, paginator) -> int:
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        return positive_int(raw, name=self.page_query_param)
