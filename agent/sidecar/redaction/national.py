"""US social security numbers (and ITINs) and national ids: UK NINO, FR NIR, ES DNI/NIE, IN
Aadhaar and PAN, DE Steuer-ID, BR CPF, CA SIN, IT codice fiscale, NL BSN, PT NIF, JP My
Number, CN resident id, KR RRN, MX CURP, ZA id, PL PESEL, SE personnummer, BE national
number, CH AHV, AU TFN, IE PPS, AR CUIT and DNI, AT SVNR, UK NHS, MX RFC, IN EPIC, SG NRIC,
AE Emirates ID, NG NIN, CO cédula; each validated by its own rules (python-stdnum's checks
where it has them).

An id whose official form is distinctive (123-45-6789, 390.533.447-05, a check letter) is
taken as it stands; one written as bare digits, or whose checksum one number in ten passes,
also needs a word that names it just before it (or the key it is the value of).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from stdnum import luhn
from stdnum.ar import cuit
from stdnum.at import vnr
from stdnum.au import tfn
from stdnum.be import nn
from stdnum.br import cpf
from stdnum.ca import sin
from stdnum.ch import ssn as ahv
from stdnum.cn import ric
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.ie import pps
from stdnum.in_ import aadhaar, epic, pan
from stdnum.it import codicefiscale
from stdnum.jp import in_ as my_number
from stdnum.kr import rrn
from stdnum.mx import curp, rfc
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.pt import nif
from stdnum.se import personnummer
from stdnum.za import idnr as za_id

from watchkeeper.agent.sidecar.redaction.text import (
    Finding,
    Text,
    mentions,
    positions,
    word_char,
)


def _safe(valid: Callable[[str], bool]) -> Callable[[str], bool]:
    """A validator that says no rather than raise (stdnum's cn.ric raises KeyError on some
    region codes): redaction must not fail an export."""
    def checked(number: str) -> bool:
        try:
            return valid(number)
        except Exception:
            return False
    return checked


@dataclass(frozen=True, slots=True)
class NumericId:
    """An id of `digits` digits, maybe with separators. Written in its `official` form it
    needs no context; otherwise one of `words` must come before it."""

    kind: str
    digits: int
    valid: Callable[[str], bool]
    check: str  # the name of `valid` in CHECKS
    words: tuple[str, ...]
    official: re.Pattern[str] | None = None


def _ssn_valid(number: str) -> bool:
    """Area 001-899 but 666, group 01-99, serial 0001-9999 (the SSA's rules since 2011)."""
    area, group, serial = number[:3], number[3:5], number[5:]
    return area not in ("000", "666") and area < "900" and group != "00" and serial != "0000"


def _any(number: str) -> bool:
    return True


def _itin_valid(number: str) -> bool:
    """9xx-7x-xxxx: the IRS's taxpayer numbers for those without an SSN."""
    return number[0] == "9" and number[3:5] in _ITIN_GROUPS


_ITIN_GROUPS = frozenset(f"{g:02d}" for g in (*range(50, 66), *range(70, 89), *range(90, 93),
                                              *range(94, 100)))
_SSN_WORDS = ("ssn", "social security", "ss#", "soc sec", "social sec", "itin", "taxpayer")
US_IDS = (
    NumericId("ssn", 9, _ssn_valid, "ssn", _SSN_WORDS, re.compile(r"\d{3}([- ])\d{2}\1\d{4}")),
    NumericId("ssn", 9, _itin_valid, "itin", _SSN_WORDS,
              re.compile(r"\d{3}([- ])\d{2}\1\d{4}")),
)


def _national(digits: int, valid: Callable[[str], bool], check: str, words: tuple[str, ...],
              official: str | None = None) -> NumericId:
    return NumericId("national_id", digits, _safe(valid), check, words,
                     re.compile(official) if official else None)


NATIONAL_IDS = (
    _national(12, aadhaar.is_valid, "aadhaar", ("aadhaar", "aadhar", "uidai", "uid", "आधार"),
              r"\d{4}([ -])\d{4}\1\d{4}"),
    _national(15, nir.is_valid, "nir", ("sécurité sociale", "securite sociale", "sécu", "nir",
                                        "insee", "social security", "numéro de sécu"),
              r"\d \d{2} \d{2} \d{2} \d{3} \d{3} \d{2}"),
    _national(11, cpf.is_valid, "cpf", ("cpf", "cadastro de pessoas"),
              r"\d{3}\.\d{3}\.\d{3}-\d{2}"),
    _national(11, idnr.is_valid, "idnr", ("steuer-id", "steuerid", "steuer id", "steuerliche",
                                          "identifikationsnummer", "idnr", "tax id", "tin")),
    _national(9, sin.is_valid, "sin", ("sin", "social insurance", "assurance sociale", "nas")),
    _national(9, bsn.is_valid, "bsn", ("bsn", "burgerservicenummer", "sofinummer")),
    _national(9, nif.is_valid, "nif", ("nif", "contribuinte", "número fiscal", "numero fiscal")),
    _national(12, my_number.is_valid, "my_number",
              ("マイナンバー", "個人番号", "my number", "mynumber")),
    _national(18, ric.is_valid, "ric", ("身份证", "resident", "id card"), r"\d{18}"),
    _national(13, rrn.is_valid, "rrn", ("주민등록", "rrn", "resident registration"),
              r"\d{6}-\d{7}"),
    _national(13, za_id.is_valid, "za_idnr",
              ("id number", "identity number", "sa id", "rsa id", "id no")),
    _national(11, pesel.is_valid, "pesel", ("pesel",)),
    _national(10, personnummer.is_valid, "personnummer", ("personnummer", "person number"),
              r"\d{6}-\d{4}"),
    _national(11, nn.is_valid, "nn", ("rijksregister", "registre national", "national number",
                                      "numéro national"), r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}"),
    _national(13, ahv.is_valid, "ahv", ("ahv", "avs", "sozialversicherung"),
              r"756\.\d{4}\.\d{4}\.\d{2}"),
    _national(9, tfn.is_valid, "tfn", ("tfn", "tax file")),
    _national(11, cuit.is_valid, "cuit", ("cuit", "cuil"), r"\d{2}-\d{8}-\d"),
    _national(10, vnr.is_valid, "vnr",
              ("svnr", "sozialversicherung", "versicherungsnummer", "e-card")),
    _national(10, nhs.is_valid, "nhs", ("nhs",)),
    _national(15, luhn.is_valid, "luhn", ("emirates id", "eid"), r"784-\d{4}-\d{7}-\d"),
    # ids without a check digit: their context is all there is to go by
    _national(11, _any, "any", ("nin", "national identification number")),
    _national(8, _any, "any", ("dni", "documento", "cédula", "cedula", "c.c.")),
    _national(10, _any, "any", ("cédula", "cedula", "c.c.")),
)
_CANDIDATES = {n: re.compile(rf"(?<![\d.-])\d(?:[ .\-]?\d){{{n - 1}}}(?![\d-]|\.\d)")
               for n in {i.digits for i in (*US_IDS, *NATIONAL_IDS)}}


def numeric_ids(ids: tuple[NumericId, ...]) -> Callable[[Text], list[Finding]]:
    by_length: dict[int, list[NumericId]] = {}
    for spec in ids:
        by_length.setdefault(spec.digits, []).append(spec)
    lengths = sorted(by_length)

    def find(text: Text) -> list[Finding]:
        s = text.text
        found = []
        for start, end, digits in text.clusters(lengths[0]):
            for n in lengths:
                if n > digits:
                    break
                for match in _CANDIDATES[n].finditer(s, start, end):
                    kind = _identify(text, match, by_length[n])
                    if kind is not None:
                        found.append(Finding(match.start(), match.end(), kind,
                                             re.sub(r"\D", "", match.group())))
        return found
    return find


def _identify(text: Text, match: re.Match[str], specs: list[NumericId]) -> str | None:
    """The kind of the first id the candidate is: written in its official form, or named by
    a word before it; then checked (the context first: it costs less than a checksum)."""
    number = re.sub(r"\D", "", match.group())
    before: str | None = None
    for spec in specs:
        if spec.official is None or not spec.official.fullmatch(match.group()):
            before = text.before(match.start()) if before is None else before
            if not mentions(before, spec.words):
                continue
        if spec.valid(number):
            return spec.kind
    return None


# Ids with letters, found where the text's shape has their letters and digits in place.
_NINO = re.compile(r"(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
                   r"(?P<sep> ?)\d{2}(?P=sep)\d{2}(?P=sep)\d{2}(?P=sep)[A-D]")
_DNI_NIE = re.compile(r"(?:\d{8}|[XYZxyz]-?\d{7})-?[A-Za-z]")
_PAN = re.compile(r"[A-Z]{5}\d{4}[A-Z]")
_FISCAL_CODE = re.compile(r"[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]")


_CURP = re.compile(r"[A-Z]{4}\d{6}[HMX][A-Z]{5}[A-Z\d]\d")
_RIC = re.compile(r"\d{17}[Xx]")
_PPS = re.compile(r"\d{7}[A-W][A-IW]?")
_RFC = re.compile(r"[A-Z&]{3,4}\d{6}[A-Z\d]{3}")
_EPIC = re.compile(r"[A-Z]{3}\d{7}")
_NRIC = re.compile(r"[STFGM]\d{7}[A-Z]")
_NRIC_WEIGHTS = (2, 7, 6, 5, 4, 3, 2)
_NRIC_LETTERS = {"S": (0, "JZIHGFEDCBA"), "T": (4, "JZIHGFEDCBA"), "F": (0, "XWUTRQPNMLK"),
                 "G": (4, "XWUTRQPNMLK"), "M": (3, "XWUTRQPNJLK")}


def _nric_valid(number: str) -> bool:
    """Singapore's NRIC and FIN: a weighted sum of the digits picks the check letter."""
    offset, letters = _NRIC_LETTERS[number[0]]
    total = offset + sum(int(d) * w for d, w in zip(number[1:8], _NRIC_WEIGHTS, strict=True))
    return letters[total % 11] == number[8]


@dataclass(frozen=True, slots=True)
class LetterId:
    heads: tuple[bytes, ...]  # its shape, or the part of it that the search starts from
    back: int  # how far before a head the id may start
    pattern: re.Pattern[str]
    valid: Callable[[str], bool]
    check: str  # the name of `valid` in CHECKS
    words: tuple[str, ...] = ()  # of which one must come before, if any are given


_CAPITAL_THEN_DIGIT = (
    LetterId((b"AA000000A", b"AA 00 00 00 A"), 0, _NINO, lambda _: True, "nino"),
    LetterId((b"AAAAA0000A",), 0, _PAN, _safe(pan.is_valid), "pan"),
    LetterId((b"AAAAAA00A00A000A",), 0, _FISCAL_CODE, _safe(codicefiscale.is_valid),
             "codicefiscale"),
    LetterId((b"AAAA000000A",), 0, _CURP, _safe(curp.is_valid), "curp"),
    LetterId((b"AAAA000000", b"AAA000000"), 0, _RFC, _safe(rfc.is_valid), "rfc"),
    LetterId((b"AAA0000000",), 0, _EPIC, _safe(epic.is_valid), "epic",
             ("epic", "voter")),
    LetterId((b"A0000000A",), 0, _NRIC, lambda n: _nric_valid(n), "nric"),
)
_DIGITS_THEN_CAPITAL = (
    LetterId((b"0000000A", b"0000000-A", b"0000000a", b"0000000-a"), 3, _DNI_NIE,
             _safe(lambda n: dni.is_valid(n) or nie.is_valid(n)), "dni_nie"),
    LetterId((b"00000000000000000A", b"00000000000000000a"), 0, _RIC, _safe(ric.is_valid),
             "ric"),
    LetterId((b"0000000A",), 0, _PPS, _safe(pps.is_valid), "pps",
             ("pps", "personal public service")),
)

# The checks the compiled detectors leave to Python (compiled.py), by name.
CHECKS: dict[str, Callable[[str], bool]] = {
    spec.check: spec.valid
    for spec in (*US_IDS, *NATIONAL_IDS, *_CAPITAL_THEN_DIGIT, *_DIGITS_THEN_CAPITAL)}


def letter_ids(text: Text) -> list[Finding]:
    shape, s = text.shape, text.text
    found: list[Finding] = []
    specs = (_CAPITAL_THEN_DIGIT if b"A0" in shape or b"A 0" in shape else ()) + (
        _DIGITS_THEN_CAPITAL if b"0000000" in shape else ())
    for spec in specs:
        for head in spec.heads:
            for at in positions(shape, head):
                match = spec.pattern.search(s, max(0, at - spec.back), at + len(head) + 8)
                if match is None or (match.start() and word_char(s[match.start() - 1])) or (
                        match.end() < len(s) and word_char(s[match.end()])):
                    continue
                if spec.valid(match.group()) and (not spec.words or mentions(
                        text.before(match.start()), spec.words)):
                    found.append(Finding(match.start(), match.end(), "national_id",
                                         re.sub(r"[\s-]", "", match.group())))
    return found
