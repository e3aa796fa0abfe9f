"""Pages of the ERP API: the project's page sizes, but a size beyond the cap is refused, not shrunk.

An integrator asking for 1000 rows and silently getting 200 would think it had everything, so
`page_size` above the cap is 422 `page_size_too_large` and one that is not a positive number 400.
"""

from django.utils.translation import gettext as _

from o2o.api.pagination import PageNumberPagination
from o2o.errors import ApplicationError


class CappedPagination(PageNumberPagination):
    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise ApplicationError(
                _("page_size must be a positive whole number."), code="invalid", details={"page_size": [raw[:20]]}
            )
        if size > self.max_page_size:
            raise ApplicationError(
                _("page_size may be at most {limit}.").format(limit=self.max_page_size),
                code="page_size_too_large",
                status=422,
                details={"page_size": [_("At most {limit}.").format(limit=self.max_page_size)]},
            )
        return size
