from typing import Any

from django.core.management.base import BaseCommand

from campaigns.snapshot import publish_snapshot


class Command(BaseCommand):
    help = "Build the serving snapshot from the database and publish it to Redis now."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"published snapshot v{publish_snapshot()}")
