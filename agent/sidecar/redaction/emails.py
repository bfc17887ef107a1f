"""E-mail addresses: plain, IDN (any script), quoted local parts, URL-encoded (%40), and
obfuscated forms ("jane [at] example [dot] com", "jane.doe at example.com", "arobase" and
"point" and their kin in a few languages)."""

from __future__ import annotations

import re

from watchkeeper.agent.sidecar.redaction.text import Finding, Text, positions

# Combining marks: \w has the letters of every script but not their vowel signs (Devanagari,
# Bengali, Thai ...), which IDN labels hold.
_MARKS = "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670" \
         "\u06d6-\u06ed\u0900-\u0dff\u0e00-\u0eff\u1000-\u109f\u3099\u309a"
_LETTER = rf"(?:[^\W_]|[{_MARKS}])"
_LABEL = rf"{_LETTER}(?:[\w{_MARKS}-]{{0,61}}{_LETTER})?"
_TLD = rf"(?:(?:[^\W\d_]|[{_MARKS}]){{2,63}}|xn--[a-z0-9-]{{2,59}})"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_TLD}(?![\w{_MARKS}-])", re.IGNORECASE)
# The local part is matched backwards from the '@' (on the reversed text), so that only the
# few '@' of a text start a match instead of every position.
_LOCAL_REVERSED = re.compile(r"[\w!#$%&'*+/=?^`{|}~-][\w.!#$%&'*+/=?^`{|}~-]{0,63}")
_QUOTED_LOCAL = re.compile(r'"[^"\\\r\n]{1,62}"$')
_LEADING = ".*'`=/|~{}#!$%&^?+-"  # markup before a name: **jane@x.org**, 'jane@x.org'
_RETINA = re.compile(r"\d(?:\.\d)?x\.", re.IGNORECASE)  # icon@2x.png is a file name
_PATH = re.compile(r"[\w~/]")
_AT_SIGNS = ("@", "%40")


def emails(text: Text) -> list[Finding]:
    s = text.text
    found: list[Finding] = []
    for sign in _AT_SIGNS:
        at = s.find(sign)
        while at >= 0:
            email = _email_at(s, at, sign) if at else None
            if email is not None:
                found.append(email)
            at = s.find(sign, email.end if email else at + 1)
    return found


def _email_at(s: str, at: int, sign: str) -> Finding | None:
    domain = _DOMAIN.match(s, at + len(sign))
    if domain is None or _RETINA.match(domain.group()):
        return None
    if s.startswith(":", domain.end()) and _PATH.match(s, domain.end() + 1):
        return None  # git@github.com:org/repo.git, an ssh remote
    local = _local_before(s, at)
    if not local:
        return None
    return Finding(at - len(local), domain.end(), "email", f"{local}@{domain.group()}".lower())


def _local_before(s: str, at: int) -> str:
    if s[at - 1] == '"':
        quoted = _QUOTED_LOCAL.search(s, max(0, at - 64), at)
        if quoted is not None:
            return quoted.group()
    local = _LOCAL_REVERSED.match(s[max(0, at - 64):at][::-1])
    return local.group()[::-1].lstrip(_LEADING) if local else ""


# The obfuscated forms, tried only where an "at" token stands; the local part is matched
# backwards from it.
_SPELLED_AT = ("at", "arobase", "arroba", "chiocciola")
_SPELLED_DOTS = ("dot", "point", "punto", "punkt", "ponto")
_DOT = (r"(?:\s*(?:\[dot\]|\(dot\)|\{dot\}|<dot>|\[\.\]|\(\.\))\s*|\s+(?:"
        + "|".join(_SPELLED_DOTS) + r")\s+|\.)")
_TAIL = re.compile(
    r"(?P<at>\s*(?:\[at\]|\(at\)|\{at\}|<at>|\[@\]|\(@\)|@)\s*|\s+(?:" + "|".join(_SPELLED_AT)
    + rf")\s+)(?P<domain>{_LABEL}(?:{_DOT}{_LABEL})*){_DOT}(?P<tld>{_TLD})(?![\w-])",
    re.IGNORECASE)
_LOCAL_BEFORE = re.compile(rf"(?<![\w.+-])(?P<local>[\w+-]+(?:{_DOT}[\w+-]+)*)\s*\Z",
                           re.IGNORECASE)
_BRACKETS = "[({<"
_SPELLED_DOT = re.compile(r"(?:" + "|".join(_SPELLED_DOTS) + r")|[\[({<]\.", re.IGNORECASE)
_ANY_DOT = re.compile(_DOT, re.IGNORECASE)
_ADDRESS_LIKE = re.compile(r"[._\d]")
_PLAIN_WORDS = frozenset({"the", "a", "an", "this", "that", "my", "your", "our", "their", "his",
                          "her", "its", "home", "work", "least", "all", "once", "last", "first"})


def obfuscated_emails(text: Text) -> list[Finding]:
    s = text.text
    found: list[Finding] = []
    for token in _at_tokens(text):
        tail = _TAIL.match(s, token)
        if tail is None or not _hidden(tail):
            continue
        local = _LOCAL_BEFORE.search(s, max(0, token - 64), token)
        if local is None or not _plausible(local.group("local"), tail):
            continue
        address = f"{local.group('local')}@{tail.group('domain')}.{tail.group('tld')}"
        found.append(Finding(local.start(), tail.end(), "email",
                             _ANY_DOT.sub(".", address).lower()))
    return found


def _at_tokens(text: Text) -> list[int]:
    """Where an "at" may stand: a bracketed "at" or "@", '@', or a spelled "at" (common in
    prose: only where a dotted word or a spelled "dot" follows)."""
    s, lower = text.text, text.lower
    tokens = positions(s, "@")
    for bracket in _BRACKETS:
        if bracket in s:
            tokens += [i for i in positions(s, bracket)
                       if lower.startswith(("at", "@"), i + 1)]
    for word in _SPELLED_AT:
        if word.encode() not in text.words:
            continue
        spelled = f" {word} "
        tokens += [i for i in positions(lower, spelled) if _dotted(lower[i + len(spelled):i + 68])]
    return sorted(tokens)


def _dotted(after: str) -> bool:
    """A dotted word or a spelled or bracketed "dot" follows: what an address needs."""
    return "." in after.split(" ", 1)[0] or any(d in after for d in _SPELLED_DOTS) or "[." in (
        after) or "(." in after


def _hidden(tail: re.Match[str]) -> bool:
    """An address a plain '@' does not show: a bracketed or spelled "at", or an '@' with
    spaces around it or a "dot" after it (a plain one is `emails`')."""
    at = tail.group("at")
    return at.strip() != "@" or at != "@" or _SPELLED_DOT.search(_domain_part(tail)) is not None


def _plausible(local: str, tail: re.Match[str]) -> bool:
    """"look at example.com" is prose: a spelled "at" needs a spelled or bracketed "dot", or
    a local part that reads like an address (jane.doe, j_doe, jdoe84), and no everyday word
    where a name would be."""
    if tail.group("at").strip().lower() not in _SPELLED_AT:
        return True
    if not (_SPELLED_DOT.search(_domain_part(tail)) or _ADDRESS_LIKE.search(local)):
        return False
    words = {local.lower(), *re.split(r"\W+", tail.group("domain").lower())}
    return not words & _PLAIN_WORDS


def _domain_part(tail: re.Match[str]) -> str:
    return tail.group()[tail.end("at") - tail.start():]
