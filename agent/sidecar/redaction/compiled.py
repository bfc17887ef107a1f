"""The compiled twins of the built-in detectors (native/src/redact/, package
watchkeeper-native): for plain ASCII values (printable ASCII, tab and line breaks), where a
character is a byte and Python's regex classes mean what Rust's ASCII classes mean. They
find what the Python detectors find (tests/test_native_redaction.py compares them finding for
finding) and leave the checks of python-stdnum and libphonenumber to Python (`Checks`), for
the few candidates that pass every cheap test first."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from watchkeeper.agent.config import RedactionConfig
from watchkeeper.agent.sidecar.redaction import finance, keys, national, phones
from watchkeeper.agent.sidecar.redaction.text import Detector, Finding

# Each check a compiled detector may ask for, by name.
CHECKS: dict[str, Callable[[str], bool]] = {**finance.CHECKS, **keys.CHECKS, **national.CHECKS}


class Checks:
    """What the compiled detectors call back: a named check, or a phone candidate's number."""

    def __init__(self, phone_numbers: phones.Phones) -> None:
        self._phones = phone_numbers

    def valid(self, check: str, value: str) -> bool:
        return CHECKS[check](value)

    def phone(self, candidate: str, before: str) -> str | None:
        return self._phones.e164(candidate, before)


def native_module() -> Any | None:
    """The watchkeeper_native module if it is installed and has the compiled detectors."""
    try:
        module = importlib.import_module("watchkeeper_native")
    except ImportError:
        return None
    return module if hasattr(module, "RedactionScanner") else None


# A changed value: its masked text and the count per type; None: the Python walk redacts it.
Change = tuple[str, dict[str, int]] | None
# A span or log record with values to change: (resource, scope, item) indexes, its
# attributes (index, change), its events' attributes (event, index, change), its log body
# (None: unchanged).
Target = tuple[tuple[int, int, int], list[tuple[int, Change]], list[tuple[int, int, Change]],
               tuple[Change] | None]


class CompiledScanner:
    """The compiled twins of some detectors, each behind the same gate as its Python twin."""

    def __init__(self, module: Any, detectors: Sequence[Detector], config: RedactionConfig,
                 ranked: Sequence[str], checks: Checks) -> None:
        self.names = frozenset(d.name for d in detectors)
        self._scanner = module.RedactionScanner(
            [(d.name, d.digits, d.token_run, list(d.marks)) for d in detectors],
            list(ranked),
            list(config.skip_attributes), config.action == "mask" and not config.policies,
            checks)

    def scan(self, value: str, context: str) -> list[Finding] | None:
        """Their findings in detector order, or None where the value or its context is not
        plain ASCII (the Python detectors take it)."""
        found = self._scanner.scan(value, context)
        return None if found is None else [Finding(*f) for f in found]

    def targets(self, body: bytes, logs: bool) -> list[Target] | None:
        """The items of an encoded request with values to change (values found clean need no
        Python; masked ones come back masked); None when it does not decode. Complete only
        where every enabled detector has a compiled twin (Scanner.targets checks)."""
        found: list[Target] | None = self._scanner.targets(body, logs)
        return found


def scanner(detectors: Sequence[Detector], config: RedactionConfig,
            ranked: Sequence[str]) -> CompiledScanner | None:
    """The compiled twins of those detectors that have one; None without the package (or
    when none has a twin). `ranked`: the enabled built-in types, the one that wins an
    overlap first. With `native: on` a missing package was refused by the config."""
    module = native_module()
    if module is None:
        return None
    twins = [d for d in detectors if d.name in module.REDACTION_DETECTORS]
    if not twins:
        return None
    numbers = next((d.find for d in detectors if isinstance(d.find, phones.Phones)), None)
    return CompiledScanner(module, twins, config, ranked,
                           Checks(numbers or phones.Phones(config.phone_regions)))


_PLAIN = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def plain_ascii(text: str) -> bool:
    """What the compiled detectors take (text.rs `plain_ascii`)."""
    return text.isascii() and all(ord(c) in _PLAIN for c in text)
