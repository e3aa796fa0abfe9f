"""`make run`: prepare the database and demo data, print where everything is, start all processes.

Web server, Celery worker and Celery beat run under honcho, which prefixes their
logs and stops all three on Ctrl-C. With DATABASE_URL / REDIS_URL set they use
PostgreSQL and Redis; otherwise SQLite under var/ and kombu's filesystem broker.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "o2o.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")


def main() -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    for folder in ("celery/queue", "celery/processed", "celery/control", "media"):
        (settings.VAR_DIR / folder).mkdir(parents=True, exist_ok=True)

    call_command("migrate", interactive=False, verbosity=0)
    call_command("load_demo", quiet=True)

    from integrations.demo import DEMO_LOGINS

    port = os.environ.get("PORT", "8000")
    base = f"http://localhost:{port}"
    database = settings.DATABASES["default"]
    broker = settings.CELERY_BROKER_URL.split("@")[-1]
    lines = [
        "",
        f"  {settings.O2O_CHAIN_NAME} O2O is starting (Ctrl-C stops web, worker and beat)",
        "",
        f"  Mall (shoppers)         {base}/mall/",
        f"  Clerk console           {base}/console/",
        f"  HQ admin                {base}/admin/",
        f"  API docs (OpenAPI)      {base}/api/docs/",
        "",
        f"  Database  {database['ENGINE'].rsplit('.', 1)[-1]} {database['NAME']}",
        f"  Broker    {broker}",
        "",
        "  Demo logins:",
        *[f"    {who:<28} {username:<20} {password}" for who, username, password in DEMO_LOGINS],
        "",
    ]
    print("\n".join(lines), flush=True)

    venv_bin = str(Path(sys.executable).parent)
    os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    honcho = str(Path(venv_bin) / "honcho")
    # honcho gives the first process (web) PORT itself.
    os.execv(honcho, [honcho, "start", "--procfile", "Procfile", "--port", port])  # noqa: S606 - fixed argv


if __name__ == "__main__":
    main()
