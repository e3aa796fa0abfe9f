"""HQ's settings rows (one row, pk 1, per app): read through the shared cache, created with defaults."""

import hashlib

from django.core.cache import cache
from django.db import models

SECONDS = 60  # every process sees HQ's change within a minute (the admin also forgets it at once)


def _key(model: type[models.Model]) -> str:
    # The key names the model's columns, so a deploy that adds a setting never reads an old pickle.
    columns = ",".join(field.attname for field in model._meta.concrete_fields)
    return f"settings:{model._meta.label_lower}:{hashlib.blake2s(columns.encode()).hexdigest()[:12]}"


def read_settings(model: type[models.Model]) -> models.Model:
    """The model's single row (its defaults until HQ saves its own), cached."""
    row = cache.get(_key(model))
    if row is None:
        row, _created = model._default_manager.get_or_create(pk=1)
        cache.set(_key(model), row, SECONDS)
    return row


def forget_settings(model: type[models.Model]) -> None:
    """Drop the cached row after HQ changes it."""
    cache.delete(_key(model))
