"""Unit tests: docker URL / TLS validation and the API error body format."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from rest_framework import exceptions

from controlplane.api import exception_handler
from controlplane.viewsets import drf_validation_error
from regions.validators import validate_docker_url, validate_host_connection


@pytest.mark.parametrize(
    "url",
    [
        "unix:///var/run/docker.sock",
        "unix:///tmp/fd-abc/docker.sock",
        "tcp://127.0.0.1:2376",
        "tcp://docker-1.internal.example:2375",
        "tcp://[::1]:2376",
        "ssh://edge-1",
        "ssh://ops@edge-1",
        "ssh://ops@127.0.0.5:2222",
    ],
)
def test_valid_docker_urls_pass(url):
    validate_docker_url(url)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "Enter a Docker URL"),
        ("http://127.0.0.1:2375", "unix://, tcp:// or ssh://"),
        ("/var/run/docker.sock", "unix://, tcp:// or ssh://"),
        ("unix://var/run/docker.sock", "absolute socket path"),
        ("unix://", "absolute socket path"),
        ("tcp://127.0.0.1", "needs a port"),
        ("tcp://127.0.0.1:0", "needs a port"),
        ("tcp://127.0.0.1:70000", "1 to 65535"),
        ("tcp://127.0.0.1:abc", "1 to 65535"),
        ("tcp://:2376", "host name or address"),
        ("tcp://bad_host!:2376", "not a valid host name"),
        ("tcp://127.0.0.1:2376/v1.41", "path, query or fragment"),
        ("tcp://u:p@127.0.0.1:2376", "user name or password"),
        ("ssh://", "host name or address"),
        ("ssh://ops:hunter2@edge", "password"),
        ("ssh://bad user@edge", "user name"),
    ],
)
def test_invalid_docker_urls_say_why(url, says):
    with pytest.raises(ValidationError) as caught:
        validate_docker_url(url)
    assert says in caught.value.messages[0]


def _pair(name="client"):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert_pem, key_pem


def _errors(**kwargs) -> dict:
    with pytest.raises(ValidationError) as caught:
        validate_host_connection(**kwargs)
    return caught.value.message_dict


def test_tls_files_must_come_as_a_matching_pair_of_pem_cert_and_key():
    cert, key = _pair()
    other_cert, _other_key = _pair("other")
    url = "tcp://127.0.0.1:2376"
    validate_host_connection(url, cert, cert, key)  # CA + pair: fine
    validate_host_connection(url, ca_cert=cert)  # CA alone: fine

    assert "neither" in _errors(docker_url=url, client_cert=cert)["tls_client_key"][0]
    assert "neither" in _errors(docker_url=url, client_key=key)["tls_client_cert"][0]
    mismatch = _errors(docker_url=url, client_cert=other_cert, client_key=key)
    assert "does not belong" in mismatch["tls_client_key"][0]
    garbage = _errors(docker_url=url, client_cert="hello", client_key=key)
    assert "PEM certificate" in garbage["tls_client_cert"][0]
    bad_key = _errors(docker_url=url, client_cert=cert, client_key="-----BEGIN x")
    assert "PEM private key" in bad_key["tls_client_key"][0]
    assert "PEM certificate" in _errors(docker_url=url, ca_cert="x")["tls_ca_cert"][0]


def test_tls_files_on_a_unix_url_are_refused_and_bad_urls_name_the_field():
    cert, key = _pair()
    refused = _errors(docker_url="unix:///s.sock", client_cert=cert, client_key=key)
    assert "only to tcp://" in refused["tls_client_key"][0]
    assert list(_errors(docker_url="tcp://x")) == ["docker_url"]


def test_error_body_lists_each_field_with_its_message():
    exc = drf_validation_error(
        ValidationError(
            {
                "docker_url": ["A tcp:// URL needs a port."],
                "__all__": ["Host with this Region and Name already exists."],
            }
        )
    )
    body = exception_handler(exc, {}).data
    assert body == {
        "detail": "Invalid input.",
        "errors": [
            {"field": "docker_url", "message": "A tcp:// URL needs a port."},
            {
                "field": None,
                "message": "Host with this Region and Name already exists.",
            },
        ],
    }
    single = exception_handler(exceptions.ValidationError({"name": ["Required."]}), {})
    assert single.data == {
        "detail": "Required.",
        "errors": [{"field": "name", "message": "Required."}],
    }
