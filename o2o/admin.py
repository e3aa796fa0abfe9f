"""Admin pieces shared by the apps."""


class ReadOnlyAdminMixin:
    """A ledger or history HQ reads in the admin but changes only through services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
