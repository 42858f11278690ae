"""TLS for the local servers: a CA made for the test, certificates it signs for 127.0.0.1, and a
way to put a running test server (the AWS proxy, the OIDC token service) behind TLS.

The server sends its certificate and the CA's (a chain that ends in a self-signed root), as a
TLS-inspecting proxy does: a client that does not trust the CA sees "self-signed certificate in
certificate chain"."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
import threading
from pathlib import Path
from socketserver import BaseServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_PEM = serialization.Encoding.PEM


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


class TestCA:
    """A root CA of its own; `.pem` is its certificate, to trust."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, name: str = "secrets-sync test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(_PEM).decode()
        self._dir = Path(tempfile.mkdtemp(prefix="test-ca-"))

    def server_context(self, host: str = "127.0.0.1") -> ssl.SSLContext:
        """A server context whose certificate (for `host`, an IP or a DNS name) this CA signs."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        try:
            alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            alt = x509.DNSName(host)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(host))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        chain = self._dir / f"chain-{x509.random_serial_number()}.pem"
        chain.write_bytes(cert.public_bytes(_PEM) + self.cert.public_bytes(_PEM))
        key_file = chain.with_suffix(".key")
        key_file.write_bytes(
            key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key_file)
        return ctx


class Handshakes:
    """Counts the TLS connections a server accepted, and how many failed their handshake (a
    client that did not trust the certificate)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.failed = 0
        self._lock = threading.Lock()

    def note(self, *, failed: bool) -> None:
        with self._lock:
            self.accepted += 1
            self.failed += failed


def serve_tls(server: BaseServer, ctx: ssl.SSLContext) -> Handshakes:
    """Put a socketserver (not yet serving) behind TLS: each accepted connection is wrapped
    and its handshake done in the handler's thread, so a client that never sends one holds
    only its own thread."""
    count = Handshakes()
    accept = server.get_request  # type: ignore[attr-defined]

    def get_request() -> tuple[Any, Any]:
        sock, address = accept()
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def process_request(request: Any, address: Any) -> None:
        def handshake_then_handle() -> None:
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                count.note(failed=True)
                server.shutdown_request(request)  # type: ignore[attr-defined]
                return
            count.note(failed=False)
            try:
                server.finish_request(request, address)
            except Exception:  # noqa: BLE001 - as socketserver's own threads do
                server.handle_error(request, address)
            finally:
                server.shutdown_request(request)  # type: ignore[attr-defined]

        threading.Thread(target=handshake_then_handle, daemon=True).start()

    server.get_request = get_request  # type: ignore[attr-defined]
    server.process_request = process_request  # type: ignore[method-assign]
    return count
