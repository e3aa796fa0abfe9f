from members.session import current_member


def member(request) -> dict:
    """The signed-in shopper for the mall's templates (read lazily, once per request)."""
    return {"member": current_member(request) if request.path.startswith("/mall/") else None}
