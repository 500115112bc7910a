#!/usr/bin/env python
"""Benchmark: pulls through a Ferry mirror site, with and without the gateway.

    .venv/bin/python bench/registry_pull.py [--runs 3] [--warm 5] [--layers 4 --mb 4]

Prints, in one run:
* warm pull through Ferry's nginx (TLS + htpasswd) + mirror versus the same
  pull from a plain registry;
* cold versus warm pull through the mirror (ratio of medians);
* upstream bytes / image bytes on a cold pull with the gateway caching, with
  it passing through, and through a bare mirror without any gateway (the
  upstream's own truth: its registry access log plus the presigned
  object-storage fetches), next to Ferry's own measured amplification;
* warm-pull time with the gateway / a bare mirror straight at the upstream
  (issue 5: must stay <= 1.05). The bare mirror is the site Ferry renders
  (same TLS nginx, registry config and kind of storage) minus the gateway,
  so only the gateway differs; "pass-through" still has a gateway in the
  path and is shown for reference.

Standalone and loopback only: its own sandboxed dockerd, moto S3, a token
server, a home registry on S3 that redirects blob GETs (as the big cloud
registries do), and mirror sites applied by Ferry's own registry_apply from
a throwaway SQLite database (the bare mirror: started from Ferry's container
specs by the rig). Everything it started is removed at the end,
also on error. Warm pulls alternate between the sites compared (rotating
which goes first), and warm ratios are medians of back-to-back pairs, so
that load drift on this shared machine hits both sides alike.
FERRY_BENCH_RAW=1 also prints every measurement.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORK = Path(tempfile.mkdtemp(prefix="ferry-bench-pull-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings.test"
os.environ["DATABASE_URL"] = f"sqlite:///{WORK / 'bench.sqlite3'}"
IMAGE_REF = "bench/rand:v1"


def setup_django(images) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    settings.FERRY_REGISTRY_IMAGE = images.registry
    settings.FERRY_NGINX_IMAGE = images.nginx
    settings.FERRY_REGISTRY_LOG_LAG = 0


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def must(proc) -> None:
    if proc.returncode != 0:
        raise RuntimeError(f"pull failed: {proc.stderr.strip()[-500:]}")


class Bench:
    """The home side (rig + token server + S3) and Ferry's rows and sites."""

    def __init__(self, engine, images, s3, tokens, ca):
        from registries.tests.gateway_rig import Rig

        self.engine, self.images, self.s3, self.tokens = engine, images, s3, tokens
        self.rig = Rig(engine.client, images, prefix="bench-")
        self.cert_dir = str(ca.write_ca_dir(WORK / "ca"))
        self.cert, self.key = (p.decode() for p in ca.issue(("127.0.0.1",)))
        self.sites: list = []

    def start_home(self, layers: int, mb: int) -> None:
        from registries.tests.gateway_rig import build_random_image, push_image

        self.home = self.rig.start_upstream(self.s3, "bench-home", self.tokens)
        self.image = build_random_image(str(WORK / "image"), layers, mb)
        push_image(self.image.layout, self.home, IMAGE_REF)
        # The plain registry: same image, no TLS, no auth, no proxy.
        self.plain = self._plain_registry()
        push_image(self.image.layout, self.plain, IMAGE_REF)

    def _plain_registry(self) -> str:
        from controlplane.testing.ports import free_port

        port = free_port()
        config = (
            "version: 0.1\nstorage: {filesystem: {rootdirectory: /var/lib/registry}}\n"
            f'http: {{addr: "127.0.0.1:{port}"}}\n'
        )
        name = "bench-plain"
        self.rig.run(
            name, self.images.registry, {"/etc/docker/registry/config.yml": config}
        )
        self.rig.wait_http(f"http://127.0.0.1:{port}/v2/", name)
        return f"http://127.0.0.1:{port}"

    def apply_site(self, gateway: bool):
        """A mirror row on its own bucket, applied by Ferry."""
        from registries import services

        row = self._mirror_row(gateway)
        self.sites.append(row)
        row = services.registry_apply(row.pk)
        if row.status != "healthy":
            raise RuntimeError(f"apply: {row.status}: {row.last_error}")
        return row

    def start_bare(self):
        """The baseline without a gateway: the site Ferry renders (TLS +
        htpasswd nginx, the mirror on its own bucket) with the mirror's
        remoteurl straight at the upstream, as a hand-made setup runs it.
        Started by the rig from Ferry's own container specs, not applied."""
        from controlplane.testing.wait import wait_for
        from registries.site import site_containers

        row = self._mirror_row(gateway=False)
        row.gateway_port = 0  # site_containers: no gateway, remoteurl = upstream
        row.notify_token = "bench-bare"
        row.store.http_secret = "bench-bare-secret"
        _, containers = site_containers(row)
        assert [c.role for c in containers] == ["registry", "nginx"], containers
        for spec in containers:
            self.rig.run(
                spec.name,
                spec.image,
                {path: content for path, content, _mode in spec.files},
                entrypoint=list(spec.entrypoint) or None,
            )
        wait_for(
            lambda: _listening(row.https_port),
            timeout=30,
            message=lambda: "\n".join(self.rig.logs(containers[-1].name)[-10:]),
        )
        return row

    def _mirror_row(self, gateway: bool):
        from controlplane.testing.ports import free_port
        from regions.models import DockerHost, Region
        from registries.models import ObjectStore, Registry, RegistryUser
        from registries.tests.gateway_rig import UP_PASSWORD, UP_USER

        region, _ = Region.objects.get_or_create(slug="edge", name="Edge")
        host, _ = DockerHost.objects.get_or_create(
            region=region, name="h", docker_url=self.engine.url
        )
        bucket = f"edge-{uuid.uuid4().hex[:8]}"
        _create_bucket(self.s3, bucket)
        store = ObjectStore.objects.create(
            region=region, name=bucket, kind="s3", endpoint=self.s3, bucket=bucket,
            access_key_id="bench", secret_access_key="bench",
        )  # fmt: skip
        row = Registry.objects.create(
            region=region, host=host, store=store, name=bucket, kind="mirror",
            upstream_url=self.home, upstream_username=UP_USER,
            upstream_password=UP_PASSWORD, port=free_port(), https_port=free_port(),
            gateway_port=free_port(), debug_port=free_port(),
            tls_certificate=self.cert, tls_private_key=self.key,
            gateway_enabled=gateway,
        )  # fmt: skip
        RegistryUser.objects.create(registry=row, username="ops", password="bench-pw")
        return row

    def pull_site(self, row):
        from registries.tests.conftest import pull_through

        dest = tempfile.mkdtemp(dir=WORK)
        try:
            must(
                pull_through(
                    f"127.0.0.1:{row.https_port}",
                    IMAGE_REF,
                    dest,
                    "ops:bench-pw",
                    self.cert_dir,
                )
            )
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def pull_plain(self):
        from registries.tests.gateway_rig import pull_image

        dest = tempfile.mkdtemp(dir=WORK)
        try:
            must(pull_image(self.plain, IMAGE_REF, dest))
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def cold(self, row, bare: bool = False) -> tuple[float, float, float | None]:
        """(seconds, upstream bytes / image bytes, Ferry's amplification;
        None for the bare mirror: no gateway log to measure from)."""
        from controlplane.testing.wait import wait_for
        from registries import metrics
        from registries.tests.gateway_fixtures import settle

        before = self.rig.upstream_truth()
        seconds = timed(lambda: self.pull_site(row))
        if bare:
            # Settled when the upstream served every blob twice (2.8's way).
            wait_for(
                lambda: _each_fetched_twice(self.rig, before, self.image.blobs),
                timeout=60,
                message="bare mirror: not every blob fetched twice",
            )
            after = self.rig.upstream_truth()
            return (
                seconds,
                (after.total_bytes - before.total_bytes) / self.image.bytes,
                None,
            )
        settle(self.engine.client, row.pk, self.image.blobs)
        after = self.rig.upstream_truth()
        metrics.registry_sample(row.pk)
        ferry = metrics.registry_stats(row)["amplification"]
        return (
            seconds,
            (after.total_bytes - before.total_bytes) / self.image.bytes,
            ferry,
        )

    def close(self) -> None:
        from adapters import containers as engine

        client = self.engine.client
        for row in self.sites:
            for state in engine.list_owned(client, f"registry:{row.pk}"):
                engine.remove(client, state.id)
            engine.remove_volume(client, f"ferry-reg-{row.pk}-gwcache")
        self.rig.close()


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _each_fetched_twice(rig, before, blobs) -> bool:
    after = rig.upstream_truth().object_gets
    return all(after.get(d, 0) - before.object_gets.get(d, 0) >= 2 for d in blobs)


def _create_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="bench", aws_secret_access_key="bench",
    ).create_bucket(Bucket=bucket)  # fmt: skip


VARIANTS = ("on", "off", "bare")


def measure(bench: Bench, runs: int, warm_runs: int) -> dict:
    """Per run: three fresh sites (gateway on, gateway pass-through, bare
    mirror without a gateway), a cold pull through each, then warm pulls
    rotating plain / on / off / bare."""
    out: dict[str, list[float]] = {"plain": []}
    for key in VARIANTS:
        for what in ("cold", "ratio", "ferry", "warm"):
            out[f"{what}_{key}"] = []
    for run in range(runs):
        sites = {
            "on": bench.apply_site(True),
            "off": bench.apply_site(False),
            "bare": bench.start_bare(),
        }
        for key, row in sites.items():
            seconds, ratio, ferry = bench.cold(row, bare=key == "bare")
            out[f"cold_{key}"].append(seconds)
            out[f"ratio_{key}"].append(ratio)
            out[f"ferry_{key}"].append(ferry or 0.0)
        for i in range(warm_runs):
            order = [("plain", None), *((f"warm_{k}", r) for k, r in sites.items())]
            order = order[i % 4 :] + order[: i % 4]
            for key, row in order:
                pull = (
                    bench.pull_plain
                    if row is None
                    else lambda r=row: bench.pull_site(r)
                )
                out[key].append(timed(pull))
        print(f"  run {run + 1}/{runs} done", flush=True)
    return out


def report(out: dict, image_bytes: int) -> None:
    if os.environ.get("FERRY_BENCH_RAW"):
        for key, values in out.items():
            print(f"  {key}: " + " ".join(f"{v:.3f}" for v in values))
    med = {k: statistics.median(v) for k, v in out.items()}
    print(f"\nimage: {image_bytes} bytes; medians of {len(out['cold_on'])} cold and "
          f"{len(out['warm_on'])} warm pulls per variant")  # fmt: skip
    names = {
        "on": "Ferry site, gateway on",
        "off": "Ferry site, gateway pass-through",
        "bare": "bare mirror, no gateway",
    }
    rows = [(f"warm pull, {names[k]}", med[f"warm_{k}"]) for k in VARIANTS]
    rows.append(("warm pull, plain registry", med["plain"]))
    rows += [(f"cold pull, {names[k]}", med[f"cold_{k}"]) for k in VARIANTS]
    for label, seconds in rows:
        print(f"  {label:<46} {seconds * 1000:8.0f} ms")
    print("ratios (warm ones: median of ratios of pulls made back to back):")
    ratio(
        "warm Ferry / plain registry",
        f"{paired_median(out['warm_on'], out['plain']):.2f}",
    )
    ratio(
        "cold / warm through the mirror (gateway on)",
        f"{med['cold_on'] / med['warm_on']:.2f}",
    )
    for key in VARIANTS:
        ferry = f"(Ferry measured {med['ferry_' + key]:.3f})" if key != "bare" else ""
        ratio(
            f"upstream bytes / image bytes, cold, {key}",
            f"{med['ratio_' + key]:.3f}   {ferry}".rstrip(),
        )
    ratio(
        "warm pull time, gateway on / pass-through",
        f"{paired_median(out['warm_on'], out['warm_off']):.3f}",
    )
    warm = paired_median(out["warm_on"], out["warm_bare"])
    verdict = "ok" if warm <= 1.05 else "SLOWER than 5%"
    ratio("warm pull time, gateway on / bare mirror", f"{warm:.3f}  ({verdict})")


def ratio(label: str, value: str) -> None:
    print(f"  {label:<48} {value}")


def paired_median(a: list[float], b: list[float]) -> float:
    """Median of a[i] / b[i]: pulls i ran back to back, so load drift on this
    shared machine cancels out better than in a ratio of two medians."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh sites per variant")
    parser.add_argument("--warm", type=int, default=7, help="warm pulls per run")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--mb", type=int, default=4, help="MiB of random data a layer")
    args = parser.parse_args()

    from controlplane.testing.dockerd import Dockerd
    from controlplane.testing.images import import_test_images
    from controlplane.testing.services import moto_server
    from controlplane.testing.tls import TestCA
    from registries.tests.gateway_rig import UP_PASSWORD, UP_USER
    from registries.tests.token_standin import TokenServer

    bench = None
    try:
        with (
            Dockerd() as engine,
            moto_server() as s3,
            TokenServer({UP_USER: UP_PASSWORD}) as tokens,
        ):
            images = import_test_images(engine.client)
            setup_django(images)
            bench = Bench(engine, images, s3, tokens, TestCA.create(WORK / "ca-key"))
            try:
                bench.start_home(args.layers, args.mb)
                print(f"home registry up; image {bench.image.bytes} bytes", flush=True)
                report(measure(bench, args.runs, args.warm), bench.image.bytes)
            finally:
                bench.close()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
