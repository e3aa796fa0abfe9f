"""`manage.py load_demo`: the demo chain 贝恩母婴 (see integrations.demo). Safe to run again."""

from django.core.management.base import BaseCommand

from integrations.demo import load_demo


class Command(BaseCommand):
    help = (
        "Load the demo chain 贝恩母婴 in Hangzhou: 17 stores with hours and staff, an HQ superuser, "
        "the catalog and every store's opening stock. Idempotent: only what is missing is created."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--quiet", action="store_true", help="Print nothing (the summary of counts is skipped).")

    def handle(self, *args, quiet: bool = False, **options) -> None:
        summary = load_demo()
        if not quiet:
            self.stdout.write("\n".join(summary.lines()))
