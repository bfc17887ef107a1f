"""What an operator adds: regex patterns (sidecar.redaction.patterns) and deny-lists of exact
strings (sidecar.redaction.deny_lists), each reported under its own name."""

from __future__ import annotations

import re
from collections.abc import Callable

from stdnum import luhn

from watchkeeper.agent.config import DenyList, RedactionPattern
from watchkeeper.agent.sidecar.redaction.text import Finder, Finding, Text, positions


def pattern(spec: RedactionPattern) -> Finder:
    regex = re.compile(spec.regex)
    # a pattern named "card" keeps only Luhn-valid numbers, as the built-in one does
    keep: Callable[[str], bool] = (
        (lambda m: luhn.is_valid(re.sub(r"\D", "", m)) if re.search(r"\d", m) else False)
        if spec.name == "card" else (lambda m: bool(m)))

    def find(text: Text) -> list[Finding]:
        return [Finding(m.start(), m.end(), spec.name, m.group())
                for m in regex.finditer(text.text) if keep(m.group())]
    return find


def deny_list(spec: DenyList) -> Finder:
    """Each value where it stands as whole words; ignoring case unless the list says not."""
    needles = [v if spec.case_sensitive else v.lower() for v in spec.values]

    def find(text: Text) -> list[Finding]:
        haystack = text.text if spec.case_sensitive else text.lower
        return [Finding(at, at + len(needle), spec.name, needle)
                for needle in needles for at in positions(haystack, needle)
                if not _inside_word(haystack, at, at + len(needle))]
    return find


def _inside_word(s: str, start: int, end: int) -> bool:
    return (start > 0 and s[start - 1].isalnum()) or (end < len(s) and s[end].isalnum())
