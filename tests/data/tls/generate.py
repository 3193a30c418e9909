"""Regenerates the TLS test certificates in this folder (test use only: the private keys
are public). Run with a Python that has the `cryptography` package (the test venv has it:
`.venv/bin/python tests/data/tls/generate.py`).

Two independent CAs: `ca` signs the server's and the trusted client's certificates;
`other-ca` signs a client certificate the server must refuse. EC P-256 keys. Valid from
2000 to 2126, so the tests depend neither on the date they run nor on a clock that is a
little behind."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = Path(__file__).resolve().parent
NOT_BEFORE = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
NOT_AFTER = dt.datetime(2126, 1, 1, tzinfo=dt.timezone.utc)


def name(*parts: tuple) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def write_key(key, file: str) -> None:
    (HERE / file).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def write_cert(cert, file: str) -> None:
    (HERE / file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def builder(subject, issuer, key) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER))


def ca(subject: x509.Name):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (builder(subject, subject, key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def leaf(file: str, subject: x509.Name, issuer, san: list, usage) -> None:
    issuer_key, issuer_cert = issuer
    key = ec.generate_private_key(ec.SECP256R1())
    b = (builder(subject, issuer_cert.subject, key)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
         .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                        critical=True)
         .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    write_key(key, f"{file}-key.pem")
    write_cert(b.sign(issuer_key, hashes.SHA256()), f"{file}-cert.pem")


def main() -> None:
    trusted = ca(name((NameOID.ORGANIZATION_NAME, "Natrium Test"), (NameOID.COMMON_NAME, "Natrium Test CA")))
    other = ca(name((NameOID.ORGANIZATION_NAME, "Elsewhere"), (NameOID.COMMON_NAME, "Untrusted Test CA")))
    write_cert(trusted[1], "ca.pem")
    write_cert(other[1], "other-ca.pem")
    leaf("server", name((NameOID.ORGANIZATION_NAME, "Natrium Test"), (NameOID.COMMON_NAME, "localhost")),
         trusted, [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
         ExtendedKeyUsageOID.SERVER_AUTH)
    leaf("client", name((NameOID.ORGANIZATION_NAME, "Natrium Test"),
                        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Clients"), (NameOID.COMMON_NAME, "alice")),
         trusted, [x509.RFC822Name("alice@example.com")], ExtendedKeyUsageOID.CLIENT_AUTH)
    leaf("stranger", name((NameOID.ORGANIZATION_NAME, "Elsewhere"), (NameOID.COMMON_NAME, "mallory")),
         other, [], ExtendedKeyUsageOID.CLIENT_AUTH)


if __name__ == "__main__":
    main()
