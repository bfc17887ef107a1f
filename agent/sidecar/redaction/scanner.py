"""All detectors over one text: the enabled built-in types, custom patterns and deny-lists,
with overlaps settled so that each character is redacted at most once. Plain ASCII values go
to the compiled twins of the built-in detectors where they are installed (compiled.py): the
same findings, a fraction of the time."""

from __future__ import annotations

import bisect

from google.protobuf.message import Message

from watchkeeper.agent.config import Builtin, RedactionConfig
from watchkeeper.agent.sidecar.redaction import (
    compiled,
    custom,
    emails,
    finance,
    keys,
    national,
    network,
    passwords,
    phones,
)
from watchkeeper.agent.sidecar.redaction.text import Detector, Finding, Text

# Where findings overlap, the earlier kind wins (an operator's own kinds before all): a
# Bearer header holds a JWT, a connection URL's password sits before an '@', a card number
# passes for a phone number in some plans.
PRECEDENCE: tuple[Builtin, ...] = (
    "private_key", "bearer", "basic_auth", "jwt", "password", "api_key", "iban", "card", "ssn",
    "national_id", "bank_account", "email", "ip", "phone")


def _builtin(config: RedactionConfig) -> dict[Builtin, tuple[Detector, ...]]:
    auth = Detector(keys.auth_headers, "auth_headers", marks=("earer", "EARER", "asic", "ASIC"))
    settings = Detector(passwords.settings, "settings", marks=("=", ":"))
    return {
        "private_key": (Detector(keys.private_keys, "private_keys", marks=("-----BEGIN",)),),
        "bearer": (auth,),
        "basic_auth": (auth,),
        "jwt": (Detector(keys.jwts, "jwts", token_run=True),),
        "password": (Detector(passwords.url_passwords, "url_passwords", marks=("://",)),
                     settings, Detector(passwords.spoken_passwords, "spoken_passwords")),
        "api_key": (Detector(keys.provider_keys, "provider_keys", token_run=True), settings,
                    Detector(keys.introduced_secrets, "introduced_secrets", token_run=True)),
        "iban": (Detector(finance.ibans, "ibans"),),
        "bank_account": (Detector(finance.bank_accounts, "bank_accounts", digits=6),),
        "card": (Detector(finance.cards, "cards", digits=finance.CARD_DIGITS.start),),
        "ssn": (Detector(national.numeric_ids(national.US_IDS), "us_ids", digits=9),),
        "national_id": (Detector(national.numeric_ids(national.NATIONAL_IDS), "national_ids",
                                 digits=8),
                        Detector(national.letter_ids, "letter_ids")),
        "email": (Detector(emails.emails, "emails", marks=("@", "%40")),
                  Detector(emails.obfuscated_emails, "obfuscated_emails")),
        "ip": (Detector(network.ipv4, "ipv4", digits=4, marks=(".",)),
               Detector(network.ipv6, "ipv6", marks=(":",))),
        "phone": (Detector(phones.Phones(config.phone_regions), "phones",
                           digits=phones.MIN_DIGITS),),
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
        # plain ASCII values: the compiled twins, and the Python detectors that have none
        self._compiled = compiled.scanner(
            detectors, config, [k for k in PRECEDENCE if k in config.builtin],
        ) if config.native != "off" else None
        self._uncompiled = [d for d in detectors if self._compiled is None
                            or d.name not in self._compiled.names]
        operator = [p.name for p in config.patterns] + [d.name for d in config.deny_lists]
        self._kinds = {*operator, *config.builtin}
        self._rank: dict[str, int] = {}
        for kind in [*operator, *PRECEDENCE]:
            self._rank.setdefault(kind, len(self._rank))

    def __bool__(self) -> bool:
        return bool(self._detectors)

    @property
    def native(self) -> bool:
        """Whether plain ASCII values go to the compiled detectors."""
        return self._compiled is not None

    def targets(self, request: Message, logs: bool) -> list[compiled.Target] | None:
        """The items of a request with values to redact, when every detector of this config
        has a compiled twin (which then tells the clean values apart); None otherwise: every
        value is to be looked at."""
        if self._compiled is None or self._uncompiled:
            return None
        return self._compiled.targets(request.SerializeToString(), logs)

    def scan(self, value: str, context: str = "") -> list[Finding]:
        """The findings in `value`, in order, none overlapping another; `context` is what
        stood before it (see Text)."""
        found = self._compiled.scan(value, context) if self._compiled is not None else None
        if found is None:
            found = _run(self._detectors, Text(value, context))
        elif self._uncompiled:
            found = _run(self._uncompiled, Text(value, context)) + found
        found = [f for f in found if f.kind in self._kinds]
        if len(found) < 2:
            return found
        found.sort(key=lambda f: (self._rank[f.kind], f.start - f.end, f.start))
        return sorted(without_overlaps(found), key=lambda f: f.start)


def without_overlaps(found: list[Finding]) -> list[Finding]:
    """Each finding that overlaps none kept before it, in order. The kept ones are disjoint,
    so in (start, end) order their ends never decrease: the only one that can overlap a
    finding is the last that starts before it ends (a bisection, not a pass over all kept:
    a hostile value holds tens of thousands of findings)."""
    spans: list[tuple[int, int]] = []  # the kept ones' (start, end), in order
    kept: list[Finding] = []
    for f in found:
        before = bisect.bisect_left(spans, (f.end,))
        if before and spans[before - 1][1] > f.start:
            continue
        bisect.insort(spans, (f.start, f.end))
        kept.append(f)
    return kept


def _run(detectors: list[Detector], text: Text) -> list[Finding]:
    """Every finding of the detectors whose gate the text passes."""
    value = text.text
    digits, token_run = text.most_digits, bool(text.token_runs())
    return [f for d in detectors
            if digits >= d.digits and (token_run or not d.token_run)
            and (not d.marks or any(m in value for m in d.marks))
            for f in d.find(text)]
