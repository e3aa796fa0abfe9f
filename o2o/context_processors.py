from django.conf import settings


def chain(request) -> dict[str, str]:
    return {"chain_name": settings.O2O_CHAIN_NAME}
