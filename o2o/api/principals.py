"""`request.user` for callers who are not Django users (members, ERP clients)."""


class Principal:
    """Authenticated, but no Django user and no permissions.

    It has no primary key (`pk` is None, as for AnonymousUser): anything keyed on the caller,
    such as a throttle, keys on `request.auth.pk`.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def get_username(self) -> str:
        return ""

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False

    def has_perms(self, perm_list, obj: object = None) -> bool:
        return False

    def has_module_perms(self, module: str) -> bool:
        return False
