"""Payment card numbers (Luhn, issuer prefix, grouping), IBANs (python-stdnum: the country's
length and format, and the mod-97 check) and domestic bank details (US routing and account
numbers, UK sort codes)."""

from __future__ import annotations

import re
from collections.abc import Callable

from stdnum import iban, luhn
from stdnum.us import rtn

from watchkeeper.agent.sidecar.redaction.text import Finding, Text, mentions, word_char

CARD_DIGITS = range(13, 20)
# The checks the compiled detectors leave to Python (compiled.py), by name.
CHECKS: dict[str, Callable[[str], bool]] = {"iban": iban.is_valid, "rtn": rtn.is_valid}
# Issuer prefixes (Visa, Mastercard incl. 2-series, Amex, Diners, JCB, Discover, UnionPay,
# Maestro, Mir, RuPay): timestamps (1…), ISBNs (978…, 979…) and most ids start elsewhere.
_ISSUER = re.compile(r"4|5[0-8]|2(?:2[0-9]|[3-6]\d|7[0-2])|3[0456789]|6|8[12]")
_GROUP = re.compile(r"\d+")
_CARD_WORDS = ("card", "carte", "tarjeta", "karte", "cartão", "carta", "visa", "mastercard",
               "amex", "cc", "kaart", "karta", "カード", "卡")
_NOT_CARD_WORDS = ("isbn", "imei", "tracking", "timestamp", "epoch", "nonce", "ts=", "unix",
                   "order", "pedido", "commande", "bestell", "invoice", "factura", "rechnung",
                   "ref")
# A result of arithmetic ("x = 4532015112830366") is one bare run of digits; a number written
# in groups after '=' ("card = 4111-1111-1111-1111") is still a card.
_MATH = ("= ",)


def cards(text: Text) -> list[Finding]:
    s = text.text
    found: list[Finding] = []
    for start, end, _ in text.clusters(CARD_DIGITS.start):
        groups = [(m.start(), m.end()) for m in _GROUP.finditer(s, start, end)]
        i = 0
        while i < len(groups):
            card = _card_from(s, groups, i)
            if card is None:
                i += 1
                continue
            before = text.before(card.start, 24)
            negatives = _NOT_CARD_WORDS + (_MATH if card.end - card.start == len(card.value)
                                           else ())
            if mentions(before, _CARD_WORDS) or not mentions(before, negatives):
                found.append(card)
            i = next(k for k, g in enumerate(groups) if g[1] == card.end) + 1
    return found


def _card_from(s: str, groups: list[tuple[int, int]], first: int) -> Finding | None:
    """The longest card number made of whole groups from `groups[first]` on: bare, or in
    groups of at least 4 digits (the last excepted) apart by a space, a dash or a dot."""
    start = groups[first][0]
    if start and (word_char(s[start - 1]) or s[start - 1] in ".-"):
        return None
    digits = ""
    best: Finding | None = None
    for k in range(first, len(groups)):
        a, b = groups[k]
        if k > first and (s[groups[k - 1][1]:a] not in _CARD_GAPS
                          or groups[k - 1][1] - groups[k - 1][0] < 4):
            break
        digits += s[a:b]
        if len(digits) >= CARD_DIGITS.stop:
            break
        followed = b < len(s) and (word_char(s[b]) or s[b] == "-" or s[b:b + 2] in _DECIMAL)
        if (len(digits) in CARD_DIGITS and not followed and _ISSUER.match(digits)
                and luhn.is_valid(digits)):
            best = Finding(start, b, "card", digits)
    return best


_CARD_GAPS = frozenset({" ", "-", ".", " - ", "\xa0", "\u202f", "\u2009"})
_DECIMAL = frozenset({f".{d}" for d in "0123456789"} | {f",{d}" for d in "0123456789"})


_IBAN_HEADS = (b"AA00", b"aa00")  # as written, or lower-case
_IBAN = re.compile(r"[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}", re.IGNORECASE)
_IBAN_CUT = re.compile(r"[ -]")


def ibans(text: Text) -> list[Finding]:
    shape, s = text.shape, text.text
    found: list[Finding] = []
    for head in _IBAN_HEADS:
        at = shape.find(head)
        while at >= 0:
            iban_ = None if at and word_char(s[at - 1]) else _iban_at(s, at)
            if iban_ is not None:
                found.append(iban_)
            at = shape.find(head, iban_.end if iban_ else at + 1)
    return found


def _iban_at(s: str, at: int) -> Finding | None:
    """The longest valid IBAN from `at`, cut at a separator or the end of the match (the
    pattern may run into a following code in capitals)."""
    match = _IBAN.match(s, at)
    if match is None:
        return None
    ends = [match.end(), *(m.start() for m in _IBAN_CUT.finditer(s, at, match.end()))]
    for end in sorted(ends, reverse=True):
        if end < len(s) and word_char(s[end]):
            continue
        candidate = s[at:end].upper()
        if iban.is_valid(candidate):
            return Finding(at, end, "iban", iban.compact(candidate))
    return None


# Domestic bank details, which carry no checksum of their own (but a US routing number):
# digits that a word naming them stands just before.
_ROUTING_WORDS = ("routing", "aba", "rtn", "transit number")
_ACCOUNT_WORDS = ("account", "acct", "a/c", "konto", "compte", "cuenta", "conta ", "rekening",
                  "口座", "账号", "账户", "계좌")
_SORT_CODE_WORDS = ("sort code", "sortcode", "sort-code")
_BANK_WORDS = _ROUTING_WORDS + _ACCOUNT_WORDS + _SORT_CODE_WORDS
_ACCOUNT = re.compile(r"(?<![\d.,-])\d(?:[ -]?\d){5,16}(?![\d-]|[.,]\d)")
_SORT_CODE = re.compile(r"(?<![\d.,-])\d{2}([ -]?)\d{2}\1\d{2}(?![\d-]|[.,]\d)")


def bank_accounts(text: Text) -> list[Finding]:
    s = text.text
    found: list[Finding] = []
    for start, end, _ in text.clusters(6):
        if not mentions(text.before(start, 32), _BANK_WORDS):
            continue  # the words are looked for again, closer, for each number
        for match in _ACCOUNT.finditer(s, start, end):
            digits = re.sub(r"\D", "", match.group())
            before = text.before(match.start(), 24)
            if (len(digits) == 9 and mentions(before, _ROUTING_WORDS) and rtn.is_valid(digits)) \
                    or mentions(before, _ACCOUNT_WORDS):
                found.append(Finding(match.start(), match.end(), "bank_account", digits))
        for match in _SORT_CODE.finditer(s, start, end):
            if mentions(text.before(match.start(), 16), _SORT_CODE_WORDS):
                found.append(Finding(match.start(), match.end(), "bank_account",
                                     re.sub(r"\D", "", match.group())))
    return found
