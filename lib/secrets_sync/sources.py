"""Source values: looked up by name in `values`, then in the step's environment, and built into
the secret strings the mapping asks for."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Template

from .errors import InputError
from .inputs import is_text
from .mapping import SecretSpec

MAX_SECRET_BYTES = 65536
_WHITESPACE = re.compile(r"[ \t\r\n]+")


@dataclass(frozen=True)
class Desired:
    """A secret as it should be in AWS. `secret_string` is None when a source is missing and the
    run skips it; it is kept out of repr so that no traceback or log can show it."""

    spec: SecretSpec
    secret_string: str | None = field(repr=False)
    missing: tuple[str, ...] = ()
    # The strings built from `keys:` templates, to be masked as they are, not only in the JSON
    # escaping they have inside secret_string.
    built: tuple[str, ...] = field(default=(), repr=False)
    secret_binary: bytes | None = field(default=None, repr=False)  # a `binary:` secret's bytes
    # AWS generates the value, or some keys of it, at the create (spec.generate, spec.generated):
    # secret_string is then None, or the JSON of the keys from sources, without those.
    generates: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def has_value(self) -> bool:
        return self.secret_string is not None or self.secret_binary is not None or self.generates


def decode_binary(spec: SecretSpec, text: str) -> bytes:
    """A `binary:` source's bytes. Strict: line breaks and spaces (as `base64` wraps its output)
    are allowed, anything else outside the standard alphabet, wrong padding, or a text that is
    not how its own bytes encode is refused, so one secret has one spelling."""
    compact = _WHITESPACE.sub("", text)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        data = None
    if not data or base64.b64encode(data).decode("ascii") != compact:
        raise InputError(
            f"source `{spec.binary_source}`",
            f"is not valid base64 (standard alphabet, `=` padding), which `binary` of "
            f"{spec.name} needs; nothing was written.",
            "store the secret as the output of `base64 -w0 FILE`.",
        )
    return data


def binary_forms(data: bytes) -> list[str]:
    """How these bytes could be shown by an AWS echo or a log: base64 (the JSON protocol
    carries SecretBinary so), with and without padding, URL-safe, and the bytes as text."""
    standard = base64.b64encode(data).decode("ascii")
    urlsafe = base64.urlsafe_b64encode(data).decode("ascii")
    out = [standard, standard.rstrip("="), urlsafe, urlsafe.rstrip("=")]
    with contextlib.suppress(UnicodeDecodeError):
        out.append(data.decode("utf-8"))
    return out


def mask_forms(desired: Desired) -> list[str]:
    """What of a desired secret must be masked beyond its sources' values: the secret string,
    the strings its templates built, and the forms its bytes could be shown in."""
    out = [desired.secret_string] if desired.secret_string else []
    out += desired.built
    if desired.secret_binary:
        out += binary_forms(desired.secret_binary)
    return out


def with_generated(desired: Desired, generated: Mapping[str | None, str]) -> str:
    """The secret string a generated secret is created with: its generated value (under the key
    None), or the JSON of its keys from sources with the generated keys added."""
    if desired.spec.generate is not None:
        return generated[None]
    data = json.loads(desired.secret_string or "{}")
    data.update((key, generated[key]) for key, _ in desired.spec.generated)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _most_bytes(spec: SecretSpec, text: str) -> int:
    """The most bytes the secret string can take once AWS has generated its keys: each as long,
    and as JSON-escaped, as its options allow."""
    data = json.loads(text)
    data.update((key, "x" * options.most_bytes) for key, options in spec.generated)
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def fill(template: str, values: Mapping[str, str]) -> str:
    """A template with each placeholder replaced by its source's value. Each value goes in as
    it is: a `$`, `${X}` or brace inside a value is text, never expanded in its turn."""
    return Template(template).substitute(values)


def build_secret_string(spec: SecretSpec, values: Mapping[str, str]) -> str:
    return _build(spec, values)[0]


def _build(spec: SecretSpec, values: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """The secret string, and the strings its `keys:` templates built (each filled once)."""
    if spec.value_source is not None:
        return values[spec.value_source], ()
    if spec.template is not None:
        return fill(spec.template, values), ()
    built = {k: fill(text, values) for k, text in spec.templates}
    data = {**{k: values[src] for k, src in spec.fields}, **built}
    # Compact, like Terraform's jsonencode; comparisons are made on the parsed JSON anyway.
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False), tuple(built.values())


def lookup(
    specs: tuple[SecretSpec, ...], given: Mapping[str, str], env: Mapping[str, str]
) -> dict[str, str]:
    """Each named source's value: `values` first, then the environment. Empty counts as absent."""
    found: dict[str, str] = {}
    for name in {src for spec in specs for src in spec.sources}:
        value = given.get(name) or env.get(name) or ""
        if value and not is_text(value):
            # Bytes that are not UTF-8 reach os.environ as lone surrogates: refuse them here,
            # before any mask or log line would have to carry them.
            raise InputError(
                f"env `{name}`",
                "is not valid UTF-8 text.",
                "hand the secret over as UTF-8 text; base64-encode binary data first.",
            )
        if value:
            found[name] = value
    return found


def resolve(
    specs: tuple[SecretSpec, ...], values: Mapping[str, str], *, missing: str
) -> tuple[Desired, ...]:
    """The desired secrets, from the values `lookup` found. With missing=fail, any absent source
    stops the run before AWS."""
    wanted = {src for spec in specs for src in spec.sources}
    absent = sorted(wanted - values.keys())
    if absent and missing == "fail":
        example = "\n".join(f"    {n}: ${{{{ secrets.{n} }}}}" for n in absent[:3])
        raise InputError(
            "sources",
            f"no value (absent or empty) for {', '.join(absent)}; nothing was written.",
            "hand each value to the step by name:\n  env:\n" + example + "\n"
            "Check that the repository or environment secret exists and is not empty, "
            "or set `missing: skip` to leave such secrets untouched.",
        )
    out: list[Desired] = []
    for spec in specs:
        gaps = tuple(src for src in spec.sources if src not in values)
        if gaps:
            out.append(Desired(spec, None, gaps))
            continue
        if spec.binary_source is not None:
            data = decode_binary(spec, values[spec.binary_source])
            if len(data) > MAX_SECRET_BYTES:
                raise InputError(
                    spec.name,
                    f"the decoded binary is over {MAX_SECRET_BYTES} bytes.",
                    "AWS allows no more; split it into several secrets.",
                )
            out.append(Desired(spec, None, secret_binary=data))
            continue
        if spec.generate is not None:
            out.append(Desired(spec, None, generates=True))  # at most 4,096 characters
            continue
        text, built = _build(spec, values)
        size = _most_bytes(spec, text) if spec.generated else len(text.encode("utf-8"))
        if size > MAX_SECRET_BYTES:
            generated = " with its generated keys as long as their options allow," * bool(
                spec.generated
            )
            raise InputError(
                spec.name,
                f"the secret string{generated} is over {MAX_SECRET_BYTES} bytes.",
                "AWS allows no more; split it into several secrets"
                + (", or generate shorter values." if spec.generated else "."),
            )
        out.append(Desired(spec, text, built=built, generates=bool(spec.generated)))
    return tuple(out)
