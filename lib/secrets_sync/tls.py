"""Whom the run trusts over TLS, and what it says when a certificate is not trusted.

The roots are the ones each client trusts by default: for AWS, botocore's (its bundle, or the file
AWS_CA_BUNDLE names, as the SDK defines it); for GitHub's token service, Python's (OpenSSL's
default paths, which SSL_CERT_FILE and SSL_CERT_DIR change). The `ca-bundle` input adds to both.
botocore takes one bundle file (`verify=`), so for AWS the two are joined into a file of the run's
own. A certificate failure is final: another attempt meets the same certificate.
"""

from __future__ import annotations

import atexit
import os
import shutil
import ssl
import tempfile
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import SecretsSyncError

_joined: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def botocore_verify(ca_bundle: Path | None, configured: str | None) -> str | None:
    """The `verify=` of an AWS client: None (botocore's own choice, AWS_CA_BUNDLE included)
    without `ca-bundle`; else a file of the roots botocore would use followed by `ca-bundle`'s.
    `configured` is the botocore session's `ca_bundle` (AWS_CA_BUNDLE)."""
    if ca_bundle is None:
        return None
    from botocore.httpsession import where as botocore_roots  # botocore's default roots

    base = configured or botocore_roots()
    key = (base, str(ca_bundle))
    with _lock:
        if key not in _joined:
            _joined[key] = _join(Path(base), ca_bundle)
        return _joined[key]


def _join(base: Path, extra: Path) -> str:
    folder = tempfile.mkdtemp(prefix="secrets-sync-ca-")
    path = os.path.join(folder, "bundle.pem")
    with open(path, "w", encoding="ascii", errors="replace") as out:
        out.write(base.read_text(encoding="ascii", errors="replace").rstrip("\n") + "\n")
        out.write(extra.read_text(encoding="ascii"))

    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return path


def context(ca_bundle: Path | None) -> ssl.SSLContext | None:
    """The context for urllib's calls: Python's default (None) without `ca-bundle`; else the
    default roots and `ca-bundle`'s."""
    if ca_bundle is None:
        return None
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cafile=str(ca_bundle))
    return ctx


def certificate_failure(exc: BaseException | None) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error behind an exception of botocore, urllib3 or urllib,
    wherever they wrapped it (cause, context, `reason`, args, botocore's `error` keyword)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLCertVerificationError):
            return item
        if isinstance(item, BaseException):
            todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None)])
            todo.extend(a for a in item.args if isinstance(a, BaseException))
            kwargs = getattr(item, "kwargs", None)
            if isinstance(kwargs, dict):
                todo.append(kwargs.get("error"))
    return None


def untrusted(
    host: str, failure: ssl.SSLCertVerificationError, ca_bundle: Path | None
) -> tuple[str, str]:
    """(problem, fix) of a certificate the run does not trust."""
    reason = failure.verify_message or failure.reason or str(failure)
    problem = f"the TLS certificate of {host} is not trusted ({reason})."
    if ca_bundle is None:
        fix = (
            "if a proxy inspects TLS, or the endpoint has a certificate of a private CA, give "
            "that CA's certificate as `ca-bundle:` (a PEM file in the workspace)."
        )
    else:
        fix = (
            f"`ca-bundle` ({ca_bundle.name}) lacks the CA that signed it: add that CA's "
            "certificate (the root, and any intermediate the server does not send)."
        )
    return problem, fix


def refuse_retries(
    client: Any, ca_bundle: Path | None, error: Callable[[str, str, str], SecretsSyncError]
) -> None:
    """Make a certificate failure final at its first attempt, for every retry handler of the
    client (botocore's and limiter.py's), and one error of the run's hierarchy naming the host
    and the reason. `error(place, problem, fix)` builds it."""

    def final(caught_exception: BaseException | None = None, **kwargs: Any) -> None:
        failure = certificate_failure(caught_exception)
        if failure is None:
            return
        url = (kwargs.get("request_dict") or {}).get("url", "")
        host = urllib.parse.urlsplit(url).hostname or client.meta.endpoint_url
        raise error("ca-bundle", *untrusted(host, failure, ca_bundle)) from None

    event = f"needs-retry.{client.meta.service_model.service_id.hyphenize()}"
    client.meta.events.register_first(event, final)
