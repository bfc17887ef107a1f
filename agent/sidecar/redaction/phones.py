"""Phone numbers, validated by Google's libphonenumber (the `phonenumbers` port) at its VALID
leniency: a candidate is a number of a real plan (its lengths and prefixes), so dates, amounts
and ids with as many digits are left alone.

International numbers (+CC or 00CC) are found for every region. National numbers (no country
code) only for the configured regions, and, unless a phone word stands before them, only when
written the way phone numbers are: with the trunk prefix (020 7946 0958), the area code in
brackets, NANP groups (415-555-0100), or in a plan without a trunk prefix, or as a mobile
number. A bare run of digits with no phone word is an order or account number more often.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat, PhoneNumberType

from watchkeeper.agent.sidecar.redaction.text import Finding, Text, mentions, word_char

_PHONE_WORDS = ("phone", "tel", "call", "mobile", "cell", "sms", "text me", "whatsapp", "fax",
                "contact", "reach", "dial", "ring", "number is", "telefon", "téléphone", "tél",
                "portable", "handy", "móvil", "movil", "celular", "número", "numero",
                "telefone", "cellulare", "телефон", "電話", "电话", "手机", "फ़ोन", "मोबाइल",
                "전화", "휴대폰", "marca", "llama", "appelez", "anrufen", "ligue", "chiama")
_NOT_PHONE_WORDS = ("order", "invoice", "account", "acct", "ref", "tracking", "ticket", "case",
                    "serial", "sku", "isbn", "version", "build", "id ", "id:", "id#", "#",
                    "no.", "nr.", "amount", "total", "price", "p/n", "part", "$", "€", "£",
                    "¥", "₹", "=", "zip", "postal", "postcode", "cep", "plz", "firmware", "geo:",
                    "incident", "issue", "bug", "request")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_NANP_GROUPS = re.compile(r"(?:1[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]\d{4}")
_INTERNATIONAL = re.compile(r"\+|00(?=[1-9])")
_GROUP = re.compile(r"\d+")
MIN_DIGITS = 7
MAX_DIGITS = 15  # E.164


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a region's numbers need, for a check before building a number to validate."""

    region: str
    country_code: int
    trunk: str | None  # the national (trunk) prefix, "0" in most of the world
    lengths: frozenset[int]  # of the national significant number


class Phones:
    def __init__(self, regions: list[str]) -> None:
        self._plans = [_plan(r) for r in regions]

    def __call__(self, text: Text) -> list[Finding]:
        s = text.text
        found: list[Finding] = []
        for start, end, digits in text.clusters(MIN_DIGITS):
            if digits > MAX_DIGITS + 2:  # '00' and a trunk '(0)' may come on top
                continue
            if start and s[start - 1] == "+":
                start -= 1
            if start and s[start - 1] == "(" and ")" in s[start:end]:  # (415) 555, (+44) 20
                start -= 1
            if (start and (word_char(s[start - 1]) or s[start - 1] in "-./\\")) or (
                    end < len(s) and word_char(s[end])):
                continue  # part of a longer token: INV-5551234567, a decimal, a path
            e164 = self.e164(s[start:end], text.before(start, 32))
            if e164 is not None:
                found.append(Finding(start, end, "phone", e164))
        return found

    def e164(self, candidate: str, before: str) -> str | None:
        """The candidate's number in E.164 form if it is one; `before`: the lower-case text
        just before it (Text.before(start, 32)). Also what the compiled detector asks."""
        number = (_international(candidate) if _INTERNATIONAL.match(candidate)
                  else self._national(before, candidate))
        return None if number is None else phonenumbers.format_number(
            number, PhoneNumberFormat.E164)

    def _national(self, before: str, candidate: str) -> PhoneNumber | None:
        groups = _GROUP.findall(candidate)
        if (_DATE.fullmatch(candidate) or any(len(g) == 1 for g in groups[1:])
                or " - " in candidate or (len(groups) == 2 and "." in candidate
                                          and not candidate.startswith("0"))
                or _ip_address(candidate)):
            return None  # 2024-11-02, 1 4 9 16 25, (45606 - 7447), 66.14143, 19.14.17.123
        context = mentions(before, _PHONE_WORDS)
        if not context and (candidate.isdigit() or mentions(before[-16:], _NOT_PHONE_WORDS)):
            return None
        digits = "".join(groups)
        for plan in self._plans:
            number = _valid_in(plan, digits)
            if number is not None and (context or _written_as_phone(plan, candidate, digits,
                                                                    number)):
                return number
        return None


def _plan(region: str) -> _Plan:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    # the config accepts supported regions only, which all have metadata
    assert metadata is not None and metadata.general_desc is not None, region
    return _Plan(region, phonenumbers.country_code_for_region(region),
                 metadata.national_prefix, frozenset(metadata.general_desc.possible_length))


def _international(candidate: str) -> PhoneNumber | None:
    """+CC or 00CC, then the national number (a trunk "(0)" dropped); calling codes are
    prefix-free, so one split of the digits is the country code."""
    digits = "".join(_GROUP.findall(candidate.replace("(0)", "")))
    if candidate.startswith("00"):
        digits = digits[2:]
    for length in (1, 2, 3):
        code = int(digits[:length] or 0)
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return _number(code, digits[length:])
    return None


def _valid_in(plan: _Plan, digits: str) -> PhoneNumber | None:
    """The number `digits` (trunk prefix and all) in the region's plan."""
    national = digits[len(plan.trunk):] if plan.trunk and digits.startswith(plan.trunk) else (
        digits)
    if len(national) not in plan.lengths:
        return None
    return _number(plan.country_code, national)


def _number(country_code: int, national: str) -> PhoneNumber | None:
    """The number if it is in its country code's plan (NANP's for any of its regions), as
    libphonenumber's is_valid_number says; built directly rather than by parse(), which
    costs three times as much to normalise text that is digits already."""
    if not national:
        return None
    zeros = len(national) - len(national.lstrip("0"))  # Italy keeps its leading zeros
    number = PhoneNumber(country_code=country_code, national_number=int(national),
                         italian_leading_zero=True if zeros else None,
                         number_of_leading_zeros=zeros if zeros > 1 else None)
    return number if phonenumbers.is_valid_number(number) else None


def _written_as_phone(plan: _Plan, candidate: str, digits: str, number: PhoneNumber) -> bool:
    return (candidate.startswith("(")
            or (plan.trunk not in (None, "1") and digits.startswith(plan.trunk))
            or (plan.country_code == 1 and _NANP_GROUPS.fullmatch(candidate) is not None)
            or not plan.trunk
            or phonenumbers.number_type(number) == PhoneNumberType.MOBILE)


def _ip_address(candidate: str) -> bool:
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    return True
