"""Ferry's real-service test harness (see /work/shared/TESTING.md).

* wait.wait_for(fn, timeout=30, interval=0.2, message="") and ports.free_port()
* dockerd.Dockerd: a sandboxed engine (.url, .client, .start(), .stop(),
  .kill(), .close()); images.import_test_images(client) -> TestImages with
  .registry .nginx .busybox built from Debian binaries, cached by hash
* tls.TestCA: .create(dir), .cert_pem, .cert_path, .issue(names), .write_ca_dir()
* services: redis_server(), postgres_server(), moto_server(), celery_worker(env)
  and a CLI (`python -m controlplane.testing.services postgres-start DIR`)
* fixtures: the pytest plugin the root conftest.py registers
"""
