"""All detectors over one text: the enabled built-in types, custom patterns and deny-lists,
with overlaps settled so that each character is redacted at most once."""

from __future__ import annotations

from dataclasses import dataclass

from watchkeeper.agent.config import Builtin, RedactionConfig
from watchkeeper.agent.sidecar.redaction import (
    custom,
    emails,
    finance,
    keys,
    national,
    network,
    passwords,
    phones,
)
from watchkeeper.agent.sidecar.redaction.text import Finder, Finding, Text


@dataclass(frozen=True, slots=True)
class Detector:
    """A finder, and what a text must have for it to find anything, checked once per text for
    all detectors (a call that returns at once still costs a microsecond, and a value goes
    past some twenty detectors)."""

    find: Finder
    digits: int = 0  # digits in one run, at least
    token_run: bool = False  # a run of key characters (Text.token_runs)
    marks: tuple[str, ...] = ()  # one of these, if any are given



# Where findings overlap, the earlier kind wins (an operator's own kinds before all): a
# Bearer header holds a JWT, a connection URL's password sits before an '@', a card number
# passes for a phone number in some plans.
PRECEDENCE: tuple[Builtin, ...] = (
    "private_key", "bearer", "basic_auth", "jwt", "password", "api_key", "iban", "card", "ssn",
    "national_id", "bank_account", "email", "ip", "phone")


def _builtin(config: RedactionConfig) -> dict[Builtin, tuple[Detector, ...]]:
    auth = Detector(keys.auth_headers, marks=("earer", "EARER", "asic", "ASIC"))
    settings = Detector(passwords.settings, marks=("=", ":"))
    return {
        "private_key": (Detector(keys.private_keys, marks=("-----BEGIN",)),),
        "bearer": (auth,),
        "basic_auth": (auth,),
        "jwt": (Detector(keys.jwts, token_run=True),),
        "password": (Detector(passwords.url_passwords, marks=("://",)), settings,
                     Detector(passwords.spoken_passwords)),
        "api_key": (Detector(keys.provider_keys, token_run=True), settings,
                    Detector(keys.introduced_secrets, token_run=True)),
        "iban": (Detector(finance.ibans),),
        "bank_account": (Detector(finance.bank_accounts, digits=6),),
        "card": (Detector(finance.cards, digits=finance.CARD_DIGITS.start),),
        "ssn": (Detector(national.numeric_ids(national.US_IDS), digits=9),),
        "national_id": (Detector(national.numeric_ids(national.NATIONAL_IDS), digits=8),
                        Detector(national.letter_ids)),
        "email": (Detector(emails.emails, marks=("@", "%40")),
                  Detector(emails.obfuscated_emails)),
        "ip": (Detector(network.ipv4, digits=4, marks=(".",)),
               Detector(network.ipv6, marks=(":",))),
        "phone": (Detector(phones.Phones(config.phone_regions), digits=phones.MIN_DIGITS),),
    }


class Scanner:
    def __init__(self, config: RedactionConfig) -> None:
        builtin = _builtin(config)
        detectors = [Detector(custom.pattern(p)) for p in config.patterns]
        detectors += [Detector(custom.deny_list(d)) for d in config.deny_lists]
        for builtin_kind in PRECEDENCE:
            if builtin_kind in config.builtin:
                detectors += [d for d in builtin[builtin_kind] if d not in detectors]
        self._detectors = detectors
        operator = [p.name for p in config.patterns] + [d.name for d in config.deny_lists]
        self._kinds = {*operator, *config.builtin}
        self._rank: dict[str, int] = {}
        for kind in [*operator, *PRECEDENCE]:
            self._rank.setdefault(kind, len(self._rank))

    def __bool__(self) -> bool:
        return bool(self._detectors)

    def scan(self, value: str, context: str = "") -> list[Finding]:
        """The findings in `value`, in order, none overlapping another; `context` is what
        stood before it (see Text)."""
        text = Text(value, context)
        digits, token_run = text.most_digits, bool(text.token_runs())
        found = [f for d in self._detectors
                 if digits >= d.digits and (token_run or not d.token_run)
                 and (not d.marks or any(m in value for m in d.marks))
                 for f in d.find(text) if f.kind in self._kinds]
        if len(found) < 2:
            return found
        found.sort(key=lambda f: (self._rank[f.kind], f.start - f.end, f.start))
        kept: list[Finding] = []
        for f in found:
            if all(f.end <= k.start or f.start >= k.end for k in kept):
                kept.append(f)
        return sorted(kept, key=lambda f: f.start)
