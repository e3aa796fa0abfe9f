# Production image: gunicorn for web, the same image runs the Celery worker and beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    O2O_VAR_DIR=/app/var

WORKDIR /app
RUN useradd --create-home --uid 1000 o2o
COPY pyproject.toml ./
COPY o2o ./o2o
COPY stores ./stores
COPY inventory ./inventory
COPY integrations ./integrations
RUN pip install --upgrade pip && pip install .
COPY . .
# Static files are collected at build time; the placeholders below exist only for this step.
RUN DJANGO_DEBUG=0 DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput \
 && mkdir -p /app/var/media && chown -R o2o /app/var
USER o2o
EXPOSE 8000
CMD ["gunicorn", "o2o.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "30", "--access-logfile", "-"]
