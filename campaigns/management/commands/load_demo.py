from typing import Any

from django.core.management.base import BaseCommand

from campaigns.demo import load_demo


class Command(BaseCommand):
    help = "Create the demo advertiser, campaigns, creatives, publisher and placements."

    def handle(self, *args: Any, **options: Any) -> None:
        data = load_demo()
        self.stdout.write(f"demo data ready; placement key {data.placement_key}")
