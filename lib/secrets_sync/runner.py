"""The runner adapter: every byte this action writes for the Actions runner goes through here.

It wraps actions-toolkit's command escaping and output delimiter format, and adds what that
package lacks: a stream we can hand in, a step-summary writer, masking that also redacts our
own lines, and typing.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from actions_toolkit.command import Command
from actions_toolkit.file_command import prepare_key_value_message

REDACTED = "***"
# Values shorter than this are still masked by the runner, but not replaced in our own lines
# and outputs: replacing "prod" or "admin" everywhere would garble names and ARNs, and nothing
# of ours ever writes a value on purpose; this is the second line of defence.
_MIN_REDACT = 8
# The text is screened every few characters, not at each one (see Runner.redact): at most this
# many, so that the index of masks stays within a few entries per mask.
_MAX_STRIDE = 8


def _longest_first(mask: str) -> tuple[int, str]:
    return -len(mask), mask


class Runner:
    """Writes workflow commands, outputs and the step summary for one run."""

    def __init__(
        self,
        stream: TextIO,
        *,
        in_actions: bool,
        output_path: Path | None = None,
        summary_path: Path | None = None,
        debug: bool = False,
    ) -> None:
        self._stream = stream
        self.in_actions = in_actions
        self.output_path = output_path
        self.summary_path = summary_path
        self.debug_enabled = debug
        self._secrets: set[str] = set()
        # Our redaction's index (see redact): the masks of _MIN_REDACT characters or more by
        # their openings, those holding a "*", and those registered since it was last brought
        # up to date.
        self._redact_stride = _MAX_STRIDE  # screen the text's openings this many apart
        self._redact_index: dict[str, set[str]] = {}
        self._redact_starred: set[str] = set()
        self._redact_pending: list[str] = []
        # Values are registered from the apply's threads too (outgoing.py), while the log goes on.
        self._masks_lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str], stream: TextIO) -> Runner:
        def path(name: str) -> Path | None:
            value = env.get(name, "")
            return Path(value) if value else None

        return cls(
            stream,
            in_actions=env.get("GITHUB_ACTIONS") == "true",
            output_path=path("GITHUB_OUTPUT"),
            summary_path=path("GITHUB_STEP_SUMMARY"),
            debug=env.get("RUNNER_DEBUG") == "1",
        )

    # Masks -------------------------------------------------------------------------------

    def add_mask(self, value: str, *, tell_runner: bool = True) -> None:
        """Register a value with the runner (inside Actions) and with our own redaction.

        tell_runner=False: our redaction only, for values read from AWS after the log has
        begun (a merge's JSON): a mask command then would put them in the log stream itself."""
        self.add_masks((value,), tell_runner=tell_runner)

    def add_masks(self, values: Iterable[str], *, tell_runner: bool = True) -> None:
        """add_mask for each value, their `::add-mask::` lines written at once: a mapping of
        1,000 secrets registers some 2,000 masks, and a write and flush each cost more than
        building them."""
        lines = []
        with self._masks_lock:
            for value in values:
                for piece in self._pieces(value):
                    if not piece or piece in self._secrets:
                        continue
                    self._secrets.add(piece)
                    if len(piece) >= _MIN_REDACT:
                        self._redact_pending.append(piece)
                    if self.in_actions and tell_runner:
                        lines.append(str(Command("add-mask", {}, piece)))
        if lines:
            self._write("\n".join(lines))

    @staticmethod
    def _pieces(value: str) -> list[str]:
        # Printable ASCII without a quote or backslash is its own JSON-escaped form: the
        # common case, spared two json.dumps calls.
        if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
            return [value, value.strip()]
        # The JSON-escaped form is how a value stands inside a JSON secret string.
        escaped = json.dumps(value)[1:-1]
        # ...and, unicode kept, how it stands in the secret strings this action builds.
        unicode_escaped = json.dumps(value, ensure_ascii=False)[1:-1]
        return [value, escaped, unicode_escaped, *(line.strip() for line in value.splitlines())]

    def redact(self, text: str) -> str:
        """Each mask, longest first (ties in character order), replaced in turn.

        A run of 1,000 secrets writes a line for each and outputs of some 500,000 characters,
        against ~3,000 masks: so only the masks that can match are tried, one whose openings
        occur in the text or one holding a "*", which an earlier replacement's "***" could
        complete. Any other is absent from the text at every turn, so skipping it changes
        nothing. The masks are indexed as they come, not per text.

        The text is screened every `stride` characters (stride: the shortest mask's length less
        _MIN_REDACT, plus one, at most _MAX_STRIDE), and each mask is indexed by its openings at
        the first `stride` offsets: a mask found at position p covers the next multiple of
        `stride`, q, with q - p < stride, and the text's _MIN_REDACT characters from q are the
        mask's own from offset q - p. So no mask that occurs is missed, and where every value
        has 15 characters or more the screen builds an eighth of the openings."""
        with self._masks_lock:
            if self._redact_pending:
                self._index_pending()
            stride, index = self._redact_stride, self._redact_index
            last = len(text) - _MIN_REDACT + 1
            grams = {text[start : start + _MIN_REDACT] for start in range(0, last, stride)}
            tried = set(self._redact_starred)
            for gram in grams.intersection(index):
                tried |= index[gram]
        for secret in sorted(tried, key=_longest_first):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def _index_pending(self) -> None:
        """Index the masks registered since the last time; all of them again only where a
        shorter mask makes the stride shorter."""
        pending, self._redact_pending = self._redact_pending, []
        stride = min(self._redact_stride, *(len(s) - _MIN_REDACT + 1 for s in pending))
        if stride < self._redact_stride:
            self._redact_stride, self._redact_index = stride, {}
            pending = [s for s in self._secrets if len(s) >= _MIN_REDACT]
        for secret in pending:
            for k in range(stride):
                self._redact_index.setdefault(secret[k : k + _MIN_REDACT], set()).add(secret)
        self._redact_starred.update(s for s in pending if "*" in s)

    # Log lines and annotations -----------------------------------------------------------

    def info(self, message: str) -> None:
        # Redact first: splitting first would cut a masked value at its line breaks (U+2028
        # and form feeds too) into pieces too short to be redacted.
        self._write("\n".join(self.redact(message).splitlines() or [""]))

    def debug(self, message: str) -> None:
        if not self.debug_enabled:
            return
        if self.in_actions:
            self._command("debug", message)
        else:
            self.info(f"debug: {message}")

    def notice(self, message: str, title: str = "") -> None:
        self._annotation("notice", message, title)

    def warning(self, message: str, title: str = "") -> None:
        self._annotation("warning", message, title)

    def error(self, message: str, title: str = "") -> None:
        self._annotation("error", message, title)

    def _annotation(self, kind: str, message: str, title: str) -> None:
        if self.in_actions:
            self._command(kind, message, {"title": title} if title else {})
        else:
            prefix = f"{kind}: {title}: " if title else f"{kind}: "
            self.info(prefix + message)

    @contextmanager
    def group(self, name: str) -> Iterator[None]:
        if self.in_actions:
            self._command("group", name)
        try:
            yield
        finally:
            if self.in_actions:
                self._command("endgroup", "")

    def _command(self, name: str, message: str, properties: dict[str, str] | None = None) -> None:
        props = {k: self.redact(v) for k, v in (properties or {}).items()}
        self._write(str(Command(name, props, self.redact(message))))

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()

    # Outputs and step summary ------------------------------------------------------------

    def set_outputs(self, outputs: Mapping[str, str]) -> bool:
        """Append outputs in the runner's delimiter format; False when there is no output file."""
        if self.output_path is None:
            return False
        text = "".join(
            prepare_key_value_message(name, self.redact(value)) + os.linesep
            for name, value in outputs.items()
        )
        with self.output_path.open("a", encoding="utf-8", newline="") as fh:
            fh.write(text)
        return True

    def append_summary(self, markdown: str) -> bool:
        if self.summary_path is None:
            return False
        with self.summary_path.open("a", encoding="utf-8", newline="") as fh:
            fh.write(self.redact(markdown))
        return True
