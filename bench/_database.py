"""The benchmarks' throwaway database: created, migrated, and removed at the end.

PostgreSQL when it answers on localhost (a database named o2o_bench), else an SQLite
file in a temporary directory. DATABASE_URL chooses the server or file instead, but
never an existing database: a PostgreSQL URL gives the server and credentials, and the
benchmark creates (and drops) "<name>_bench" there; an SQLite URL must name a file
that does not exist yet. So `make bench` can never fill or drop var/o2o.sqlite3 or a
developer's database.
"""

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH_DATABASE_NAME = "o2o_bench"
_POSTGRES_ENGINES = ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2")


class DatabaseUnavailable(Exception):
    pass


@dataclass(frozen=True)
class ThrowawayDatabase:
    vendor: str  # "postgresql" or "sqlite"
    description: str  # what to print: server and database, or file


def _postgres_answers(host: str = "localhost", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError:
        return False
    try:
        import psycopg2

        psycopg2.connect(host=host, port=port, dbname="postgres", user="postgres", connect_timeout=2).close()
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        return False
    return True


def _bench_name(name: str) -> str:
    return name if name.endswith("bench") else f"{name}_bench"


def _admin_connection(config: dict):
    import psycopg2

    connection = psycopg2.connect(
        host=config.get("HOST") or "localhost",
        port=config.get("PORT") or 5432,
        user=config.get("USER") or None,
        password=config.get("PASSWORD") or None,
        dbname="postgres",
        connect_timeout=5,
    )
    connection.autocommit = True
    return connection


def _recreate_postgres(config: dict, name: str) -> None:
    from psycopg2 import sql

    connection = _admin_connection(config)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


def _drop_postgres(config: dict, name: str) -> None:
    from psycopg2 import sql

    connection = _admin_connection(config)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        connection.close()


def _remove_sqlite(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _configure_django(database_url: str, var_dir: Path) -> None:
    # The development settings with everything that could touch var/ or a service pointed elsewhere.
    os.environ["DJANGO_SETTINGS_MODULE"] = "o2o.settings"
    os.environ["DJANGO_DEBUG"] = "1"
    os.environ["DATABASE_URL"] = database_url
    os.environ["O2O_VAR_DIR"] = str(var_dir)
    os.environ["REDIS_URL"] = ""
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    # DEBUG (needed for the development defaults) makes Django log every query; production
    # does not, so the timings run without the query log.
    settings.DEBUG = False


@contextmanager
def throwaway_database(backend: str = "auto") -> Iterator[ThrowawayDatabase]:
    """Set Django up on a fresh, migrated database that is removed on the way out.

    backend: "auto" (DATABASE_URL, else PostgreSQL on localhost if it answers, else
    SQLite), "postgresql" (a PostgreSQL DATABASE_URL's server and name, else localhost;
    fail if it does not answer) or "sqlite".
    """
    import environ

    temp_dir = Path(tempfile.mkdtemp(prefix="o2o-bench-"))
    url = os.environ.get("DATABASE_URL", "") if backend in ("auto", "postgresql") else ""
    if url and backend == "postgresql" and environ.Env.db_url_config(url)["ENGINE"] not in _POSTGRES_ENGINES:
        url = ""  # --postgresql with an SQLite DATABASE_URL: the server on localhost
    cleanup = None
    try:
        if not url and backend in ("auto", "postgresql"):
            if _postgres_answers():
                url = f"postgres://postgres@localhost:5432/{BENCH_DATABASE_NAME}"
            elif backend == "postgresql":
                raise DatabaseUnavailable("PostgreSQL does not answer on localhost:5432 (user postgres).")
        if not url:
            url = f"sqlite:///{temp_dir / 'bench.sqlite3'}"

        config = environ.Env.db_url_config(url)
        engine = config["ENGINE"]
        if engine in _POSTGRES_ENGINES:
            name = _bench_name(config["NAME"] or "o2o")
            parts = urlsplit(url)
            url = urlunsplit(parts._replace(path=f"/{name}"))
            _recreate_postgres(config, name)
            cleanup = partial(_drop_postgres, config, name)
            host = f"{config.get('HOST') or 'localhost'}:{config.get('PORT') or 5432}"
            database = ThrowawayDatabase("postgresql", f"PostgreSQL, database {name} on {host} (dropped at the end)")
        elif engine == "django.db.backends.sqlite3":
            path = config["NAME"]
            if path not in ("", ":memory:"):
                if Path(path).exists():
                    raise DatabaseUnavailable(
                        f"refusing to use the existing SQLite file {path}: the benchmark creates and deletes its "
                        "own file; give a path that does not exist."
                    )
                cleanup = partial(_remove_sqlite, path)
            database = ThrowawayDatabase("sqlite", f"SQLite, file {path or ':memory:'} (deleted at the end)")
        else:
            raise DatabaseUnavailable(f"unsupported database engine for the benchmarks: {engine}")

        _configure_django(url, temp_dir)
        try:
            yield database
        finally:
            from django.db import connections

            connections.close_all()
    finally:
        if cleanup is not None:
            cleanup()
        shutil.rmtree(temp_dir, ignore_errors=True)


def flush_database() -> None:
    """Empty every table between two benchmarks, so each starts from a migrated, empty database."""
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)
