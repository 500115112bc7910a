"""Seed a demo topology (three regions, a host and an object store each).

Runs only while the Region table is empty, so it is safe to run on every
start. Nothing seeded needs a secret; every row is written through
object_save, so the audit trail shows the system created it.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from controlplane.services import object_save
from regions.models import DockerHost, Region
from registries.models import ObjectStore

# slug, name, role, host name, host roles
DEMO_REGIONS = [
    ("cn-hangzhou", "Hangzhou", Region.Role.HOME, "hz-demo-1", ["registry", "build"]),
    ("cn-hongkong", "Hong Kong", Region.Role.EDGE, "hk-demo-1", ["registry", "app"]),
    ("us-west-1", "Silicon Valley", Region.Role.EDGE, "sv-demo-1", ["registry", "app"]),
]
# The local engine's socket: harmless to check, and "up" where Docker runs.
DEMO_DOCKER_URL = "unix:///var/run/docker.sock"


def seed_region(slug: str, name: str, role: str, host: str, host_roles: list) -> None:
    def save(instance, data):
        return object_save(None, instance, data, via="system")

    region = save(
        Region(), {"slug": slug, "name": name, "provider": "aliyun", "role": role}
    )
    save(
        DockerHost(),
        {
            "region": region,
            "name": host,
            "docker_url": DEMO_DOCKER_URL,
            "roles": host_roles,
        },
    )
    save(
        ObjectStore(),
        {
            "region": region,
            "name": f"oss-{slug}",
            "kind": ObjectStore.Kind.OSS,
            # Registries in the region reach OSS through its internal endpoint.
            "endpoint": f"oss-{slug}-internal.aliyuncs.com",
            "internal_endpoint": True,
            "bucket": f"ferry-demo-{slug}",
            "s3_region": f"oss-{slug}",
            "root_directory": "/registry",
        },
    )


class Command(BaseCommand):
    help = "Create the demo regions, hosts and object stores if there are no regions."

    def handle(self, *args, **options):
        if Region.objects.exists():
            self.stdout.write("Regions exist already; demo topology not seeded.")
            return
        with transaction.atomic():
            for row in DEMO_REGIONS:
                seed_region(*row)
        slugs = ", ".join(row[0] for row in DEMO_REGIONS)
        self.stdout.write(self.style.SUCCESS(f"Seeded demo regions: {slugs}."))
