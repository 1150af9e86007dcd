"""Certificates for TLS tests, made with `cryptography` at test time (none are committed):
a CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, each a
PEM file in a directory of the test run's."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FOR = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass(frozen=True)
class _Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def make_certificates(directory: Path, ca_name: str = "sockhop test CA") -> Certificates:
    """A fresh CA and the two certificates it signs, written to directory."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _Issuer(_name(ca_name), ca_key)
    ca_cert = _certificate(ca, ca.name, ca_key, is_ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate(
        ca, _name("redis"), server_key, is_ca=False, usage=ExtendedKeyUsageOID.SERVER_AUTH,
        names=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _certificate(ca, _name("sockhop"), client_key, is_ca=False,
                               usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    files = Certificates(directory / "ca.crt", directory / "server.crt", directory / "server.key",
                         directory / "client.crt", directory / "client.key")
    files.ca.write_bytes(_pem(ca_cert))
    files.server_cert.write_bytes(_pem(server_cert))
    files.server_key.write_bytes(_key_pem(server_key))
    files.client_cert.write_bytes(_pem(client_cert))
    files.client_key.write_bytes(_key_pem(client_key))
    return files


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(issuer: _Issuer, subject: x509.Name, key: ec.EllipticCurvePrivateKey, *,
                 is_ca: bool, usage: x509.ObjectIdentifier | None = None,
                 names: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=not is_ca, key_cert_sign=is_ca,
            crl_sign=is_ca, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
    )
    if not is_ca:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer.key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
