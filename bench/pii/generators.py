"""Generators of the corpus' sensitive items and hard negatives (seeded, every checksum computed).

Each generator takes a random.Random and optional arguments (from the slot name: `phone.FR.intl`
calls phone(rng, "FR", "intl")) and returns (value, kind). The values are synthetic: names are
common first and last names put together at random, domains are reserved ones (example.*,
.test, .example, the IANA IDN test TLDs), phone numbers lie in ranges kept for fiction where a
country has one (US/CA 555-01xx, London 020 7946 0xxx, Paris 01 99 00, Australia 0491 570) and
are otherwise random numbers that libphonenumber accepts, identity and bank numbers are random
numbers with valid checksums, keys and tokens are random strings in the providers' shapes.
None is anybody's.
"""

# ruff: noqa: RUF001  (the multiplication, minus and prime signs belong to the negatives)
from __future__ import annotations

import base64
import ipaddress
import json
import random
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import phonenumbers
from stdnum import ean as std_ean
from stdnum import iban as std_iban
from stdnum import isbn as std_isbn
from stdnum import luhn as std_luhn
from stdnum import verhoeff
from stdnum.br import cpf
from stdnum.ca import sin
from stdnum.de import idnr
from stdnum.es import ccc, dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar, pan
from stdnum.iso7064 import mod_11_10
from stdnum.it import codicefiscale
from stdnum.jp import in_ as my_number
from stdnum.nl import bsn
from stdnum.pt import nif
from stdnum.us import rtn, ssn

Out = tuple[str, str]
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
B32 = string.ascii_uppercase + "234567"
HEX = "0123456789abcdef"


def pick(rng: random.Random, seq: str | list[str] | tuple[str, ...], k: int = 1) -> str:
    return "".join(rng.choice(seq) for _ in range(k))


# --- people and places (fillers, never labelled) ----------------------------------------------
FIRST = ["james", "olivia", "priya", "arjun", "wei", "yuki", "hiroshi", "sofia", "lucas", "mateus",
         "ana", "joao", "francois", "camille", "lea", "jonas", "lena", "felix", "marta", "javier",
         "lucia", "kenji", "aiko", "rahul", "ananya", "vikram", "meera", "chloe", "noah", "emma",
         "giulia", "marco", "fatima", "omar", "ingrid", "sven", "tomasz", "agnieszka", "thandi",
         "chinedu", "amara", "diego", "valentina", "bruno", "beatriz", "sanjay", "deepa", "haruto"]
LAST = ["smith", "dupont", "martin", "muller", "schmidt", "garcia", "lopez", "fernandez", "silva",
        "santos", "oliveira", "tanaka", "sato", "suzuki", "sharma", "patel", "iyer", "reddy",
        "rossi", "bianchi", "jansen", "devries", "nowak", "kowalski", "okafor", "nkosi", "chen",
        "wang", "kim", "park", "nguyen", "moreau", "lefebvre", "weber", "wagner", "romero",
        "costa", "pereira", "nakamura", "kapoor", "mehta", "andersson", "lindqvist", "obrien"]
CITIES = ["Lyon", "Hamburg", "Valencia", "Porto", "Osaka", "Pune", "Bengaluru", "Curitiba",
          "Turin", "Utrecht", "Leeds", "Austin", "Calgary", "Gdansk", "Cape Town", "Lagos"]
COMPANY = ["acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne",
           "tyrell", "cyberdyne", "soylent", "wonka", "oscorp", "massive", "gringotts"]
SERVICES = ["checkout", "billing", "orders", "search", "auth", "ledger", "notifier", "catalog",
            "payments", "gateway", "profile", "inventory", "chat-api", "rag-worker"]


def filler(rng: random.Random, what: str) -> str:
    if what == "first":
        return rng.choice(FIRST).capitalize()
    if what == "name":
        return f"{rng.choice(FIRST).capitalize()} {rng.choice(LAST).capitalize()}"
    if what == "user":
        return rng.choice(["app", "svc_" + rng.choice(SERVICES).replace("-", "_"), "admin",
                           "readonly", "etl", "reporting", rng.choice(FIRST)])
    if what == "host":
        return (f"{rng.choice(SERVICES)}-db-{rng.randint(1, 9)}."
                f"{rng.choice(['internal.example', 'prod.example.net', 'corp.example'])}")
    if what == "db":
        return rng.choice(["orders", "app", "analytics", "users", "billing", "crm", "prod"])
    if what == "service":
        return rng.choice(SERVICES)
    if what == "company":
        return rng.choice(COMPANY)
    if what == "city":
        return rng.choice(CITIES)
    if what == "n":
        return str(rng.randint(2, 97))
    if what == "hex8":
        return pick(rng, HEX, 8)
    raise KeyError(what)


# --- email -------------------------------------------------------------------------------------
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "corp.example",
           "support.example.co.uk", "acme.test", "globex.example", "eu.initech.example",
           "students.uni-example.edu", "example.fr", "example.de", "example.es", "example.jp",
           "example.in", "example.com.br", "example.pt", "example.it"]
IDN_DOMAINS = ["bücher.example", "müller-bau.example", "société-générale.test", "españa.example",
               "例え.テスト", "пример.испытание", "उदाहरण.परीक्षा", "xn--bcher-kva.example",
               "café.example.fr", "straße.example.de", "mañana.example.es", "ação.example.com.br",
               "例子.测试", "δοκιμή.example", "xn--mller-kva.example"]
EAI_LOCAL = ["josé", "françois.müller", "ユーザー", "अनिल", "zoë.brontë", "søren", "joão.conceição",
             "пользователь", "δοκιμή"]


def _local(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return rng.choice([f"{first}.{last}", f"{first[0]}.{last}", f"{first}_{last}",
                       f"{first}{last}{rng.randint(1, 99)}", f"{last}.{first}", f"{first}-{last}",
                       f"{first}{rng.randint(70, 99)}", f"{first[0]}{last}"])


def email(rng: random.Random, style: str = "") -> Out:
    style = style or rng.choice(["plain"] * 5 + ["plus", "plus", "quoted", "idn", "idn", "eai",
                                                 "obf", "obf", "upper", "sub"])
    local, domain = _local(rng), rng.choice(DOMAINS)
    if style == "plus":
        tag = rng.choice(["invoices", "news", "llm", "test", "work", "spam"])
        return f"{local}+{tag}@{domain}", "plus"
    if style == "quoted":
        first, last = rng.choice(FIRST), rng.choice(LAST)
        q = rng.choice([f'"{first} {last}"', f'"{first}..{last}"', f'"{first}@home"'])
        return f"{q}@{domain}", "quoted_local"
    if style == "idn":
        return f"{local}@{rng.choice(IDN_DOMAINS)}", "idn_domain"
    if style == "eai":
        return f"{rng.choice(EAI_LOCAL)}@{rng.choice(IDN_DOMAINS + DOMAINS[:4])}", "unicode_local"
    if style == "upper":
        upper = rng.random() < 0.5
        value = f"{local}@{domain}".upper() if upper else f"{local.title()}@{domain.title()}"
        return value, "mixed_case"
    if style == "urlenc":  # as a query parameter
        return f"{local}%40{domain}", "url_encoded"
    if style == "sub":
        sub = rng.choice(["eu", "mx", "mail", "in"])
        return f"{local}@{sub}.{rng.choice(SERVICES)}.example.com", "subdomain"
    if style == "obf":
        name, dot = domain.rsplit(".", 1)
        name_parts = name.replace(".", " dot ")
        shapes = [f"{local} at {name_parts} dot {dot}", f"{local} [at] {name} [dot] {dot}",
                  f"{local}(at){name}(dot){dot}", f"{local} AT {name} DOT {dot}",
                  f"{local} {{at}} {name} {{dot}} {dot}", f"{local} arobase {name} point {dot}",
                  f"{local} arroba {name} punto {dot}", f"{local}@{name}[.]{dot}",
                  f"{local} [at] {name}.{dot}"]
        return rng.choice(shapes), "obfuscated"
    return f"{local}@{domain}", "plain"


# --- phone -------------------------------------------------------------------------------------
PHONE_REGIONS = ["US", "CA", "GB", "FR", "DE", "ES", "IT", "PT", "BR", "MX", "IN", "JP", "CN",
                 "KR", "AU", "NL", "CH", "SE", "PL", "ZA", "NG", "SG", "AE", "IE", "BE", "AT",
                 "AR", "CO"]
PNF = phonenumbers.PhoneNumberFormat


def _phone_number(rng: random.Random, region: str) -> phonenumbers.PhoneNumber:
    fiction = {"US": lambda: f"+1 {rng.choice(['201', '212', '415', '312', '617', '206'])} 555 01"
                             f"{rng.randint(0, 99):02d}",
               "CA": lambda: f"+1 {rng.choice(['416', '514', '604', '506', '403'])} 555 01"
                             f"{rng.randint(0, 99):02d}",
               "GB": lambda: f"+44 20 7946 0{rng.randint(0, 999):03d}",
               "AU": lambda: f"+61 491 570 {rng.randint(0, 999):03d}",
               "FR": lambda: f"+33 1 99 00 {rng.randint(0, 99):02d} {rng.randint(0, 99):02d}"}
    if region in fiction and rng.random() < 0.7:
        number = phonenumbers.parse(fiction[region]())
        if phonenumbers.is_valid_number(number):
            return number
    kind = rng.choice([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.MOBILE,
                       phonenumbers.PhoneNumberType.FIXED_LINE])
    example = phonenumbers.example_number_for_type(region, kind) or \
        phonenumbers.example_number(region)
    national = str(example.national_number)
    keep = max(2, len(national) - 5)
    for _ in range(200):
        candidate = national[:keep] + "".join(str(rng.randint(0, 9))
                                              for _ in range(len(national) - keep))
        number = phonenumbers.parse(f"+{example.country_code}{candidate}")
        if phonenumbers.is_valid_number(number):
            return number
    return example


def phone(rng: random.Random, region: str = "", style: str = "") -> Out:
    region = region or rng.choice(PHONE_REGIONS)
    style = style or rng.choice(["intl"] * 4 + ["national"] * 4 + ["e164", "e164", "rfc3966",
                                 "dots", "dashes", "trunk0", "intl00"])
    number = _phone_number(rng, region)
    intl = phonenumbers.format_number(number, PNF.INTERNATIONAL)
    national = phonenumbers.format_number(number, PNF.NATIONAL)
    cc = f"+{number.country_code}"
    if style == "intl":
        value = intl
    elif style == "national":
        value = national
    elif style == "e164":
        value = phonenumbers.format_number(number, PNF.E164)
    elif style == "rfc3966":  # tel:+33-6-12-34-56-78 without the scheme, which stays outside
        value = phonenumbers.format_number(number, PNF.RFC3966).removeprefix("tel:")
    elif style == "dots":
        value = national.replace(" ", ".").replace("-", ".").replace("(", "").replace(")", "")
    elif style == "dashes":
        value = intl.replace(" ", "-")
    elif style == "trunk0":  # +33 (0)6 12 34 56 78, the European habit
        rest = intl[len(cc):].strip()
        value = f"{cc} (0){rest}" if national.startswith("0") else intl
    else:  # 0033 6 12 34 56 78
        value = "00" + intl[1:]
    return value, f"{region}/{style}"


# --- cards ---------------------------------------------------------------------------------------
CARD_BRANDS = {"visa": (["4"], 16), "mastercard": (["51", "52", "53", "54", "55", "2221", "2720",
                                                    "2345"], 16),
               "amex": (["34", "37"], 15), "discover": (["6011", "65", "644"], 16),
               "jcb": (["3528", "3566", "3589"], 16), "diners": (["36", "38"], 14),
               "unionpay": (["62"], 19), "maestro": (["6759", "5018"], 13), "visa19": (["4"], 19)}


def card_number(rng: random.Random, brand: str = "") -> str:
    brand = brand or rng.choice(list(CARD_BRANDS))
    prefixes, length = CARD_BRANDS[brand]
    body = rng.choice(prefixes)
    body += "".join(str(rng.randint(0, 9)) for _ in range(length - 1 - len(body)))
    return body + std_luhn.calc_check_digit(body)


def group(digits: str, sizes: list[int], sep: str) -> str:
    out, i = [], 0
    for size in sizes:
        out.append(digits[i:i + size])
        i += size
    if i < len(digits):
        out.append(digits[i:])
    return sep.join(p for p in out if p)


def card(rng: random.Random, brand: str = "", sep: str = "") -> Out:
    brand = brand or rng.choice([*CARD_BRANDS, "visa", "visa", "mastercard", "mastercard"])
    number = card_number(rng, brand)
    sep = sep or rng.choice(["none", "space", "space", "dash", "dash", "dot", "nbsp", "spaced-dash",
                             "mixed"])
    sizes = [4, 6, 5] if len(number) == 15 else [4, 6, 4] if len(number) == 14 else [4, 4, 4, 4]
    joiner = {"none": "", "space": " ", "dash": "-", "dot": ".", "nbsp": "\u00a0",
              "spaced-dash": " - ", "mixed": " "}[sep]
    value = group(number, sizes, joiner)
    if sep == "mixed":
        value = value.replace(" ", "-", 1)
    return value, f"{brand}/{sep}"


# --- bank ---------------------------------------------------------------------------------------
IBAN_COUNTRIES = ["DE", "FR", "ES", "GB", "IT", "NL", "BE", "PT", "CH", "AT", "PL", "IE", "SE",
                  "BR", "NO", "LU"]


def _bban(rng: random.Random, structure: str) -> str:
    out = []
    for n, kind in std_iban._struct_re.findall(structure):
        for _ in range(int(n)):
            out.append(rng.choice(string.digits if kind == "n" else string.ascii_uppercase
                                  if kind == "a" else string.digits * 3 + string.ascii_uppercase))
    return "".join(out)


def iban_number(rng: random.Random, country: str = "") -> str:
    country = country or rng.choice(IBAN_COUNTRIES)
    structure = std_iban._ibandb.info(country)[0][1]["bban"]
    for _ in range(500):
        bban = _bban(rng, structure)
        if country == "ES":  # the Spanish CCC carries its own check digits
            bban = bban[:8] + ccc.calc_check_digits(bban[:8] + "00" + bban[10:]) + bban[10:]
        if country == "BE":  # and so does the Belgian account number (mod 97)
            check = int(bban[:10]) % 97 or 97
            bban = bban[:10] + f"{check:02d}"
        candidate = country + std_iban.calc_check_digits(country + "00" + bban) + bban
        if std_iban.is_valid(candidate):
            return candidate
    raise RuntimeError(country)


def iban(rng: random.Random, country: str = "", style: str = "") -> Out:
    number = iban_number(rng, country)
    style = style or rng.choice(["grouped", "grouped", "compact", "grouped-lower", "dashes"])
    if style == "compact":
        value = number
    elif style == "dashes":
        value = group(number, [4] * 9, "-")
    else:
        value = group(number, [4] * 9, " ")
        if style == "grouped-lower" and rng.random() < 0.5:
            value = value.lower()
    return value, f"{number[:2]}/{style}"


def bank(rng: random.Random, kind: str = "") -> Out:
    kind = kind or rng.choice(["us_routing", "us_account", "uk_sort_code", "uk_account"])
    if kind == "us_routing":
        for _ in range(100):
            head = f"{rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 21, 22, 26, 31, 32]):02d}"
            body = head + "".join(str(rng.randint(0, 9)) for _ in range(6))
            number = body + rtn.calc_check_digit(body)
            if rtn.is_valid(number):
                return number, kind
    if kind == "us_account":
        return "".join(str(rng.randint(0, 9)) for _ in range(rng.choice([8, 10, 11, 12]))), kind
    if kind == "uk_sort_code":
        d = [f"{rng.randint(0, 99):02d}" for _ in range(3)]
        d[0] = f"{rng.choice([20, 30, 40, 60, 77, 83, 9]):02d}"
        return rng.choice(["-", "-", " ", ""]).join(d), kind
    return "".join(str(rng.randint(0, 9)) for _ in range(8)), "uk_account"


# --- US SSN and national identity numbers -------------------------------------------------------
def us_ssn(rng: random.Random, style: str = "") -> Out:
    while True:
        area = rng.choice([rng.randint(1, 665), rng.randint(667, 899)])
        number = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
        if ssn.is_valid(number):
            break
    style = style or rng.choice(["dashes", "dashes", "dashes", "spaces", "compact"])
    sep = {"dashes": "-", "spaces": " ", "compact": ""}[style]
    return sep.join((number[:3], number[3:5], number[5:])), style


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def _nino(rng: random.Random) -> str:
    bad_pairs = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
    while True:
        a = rng.choice([c for c in string.ascii_uppercase if c not in "DFIQUV"])
        b = rng.choice([c for c in string.ascii_uppercase if c not in "DFIOQUV"])
        if a + b not in bad_pairs:
            return a + b + _digits(rng, 6) + rng.choice("ABCD")


def _nir(rng: random.Random) -> str:
    while True:
        body = (rng.choice("12") + f"{rng.randint(50, 99):02d}" + f"{rng.randint(1, 12):02d}"
                + f"{rng.choice([rng.randint(1, 95), 75, 69, 13]):02d}"
                + f"{rng.randint(1, 990):03d}" + f"{rng.randint(1, 999):03d}")
        number = body + nir.calc_check_digits(body)
        if nir.is_valid(number):
            return number


def _idnr(rng: random.Random) -> str:
    while True:
        digits = [str(rng.randint(1, 9))] + [str(rng.randint(0, 9)) for _ in range(9)]
        body = "".join(digits)
        number = body + mod_11_10.calc_check_digit(body)
        if idnr.is_valid(number):
            return number


def _cpf(rng: random.Random) -> str:
    while True:
        base = [rng.randint(0, 9) for _ in range(9)]
        for n in (10, 11):
            s = sum(d * w for d, w in zip(base, range(n, 1, -1), strict=False)) % 11
            base.append(0 if s < 2 else 11 - s)
        number = "".join(map(str, base))
        if cpf.is_valid(number):
            return number


def _luhn_with(rng: random.Random, first: str, n: int) -> str:
    body = first + _digits(rng, n - 1 - len(first))
    return body + std_luhn.calc_check_digit(body)


def _codice_fiscale(rng: random.Random) -> str:
    cons = "BCDFGHLMNPRSTVZ"
    while True:
        body = (pick(rng, cons, 3) + pick(rng, cons, 3) + f"{rng.randint(50, 99):02d}"
                + rng.choice("ABCDEHLMPRST")
                + f"{rng.choice([rng.randint(1, 28), rng.randint(41, 68)]):02d}"
                + rng.choice(["H501", "F205", "L219", "G273", "A662", "D612"]))
        number = body + codicefiscale.calc_check_digit(body)
        if codicefiscale.is_valid(number):
            return number


def _eleven_proof(rng: random.Random, weights: list[int], n: int, first: str = "") -> str:
    while True:
        digits = first + _digits(rng, n - len(first))
        total = sum(int(d) * w for d, w in zip(digits, weights, strict=False))
        if total % 11 == 0:
            return digits


NATIONAL_KINDS = ["uk_nino", "fr_nir", "es_dni", "es_nie", "in_aadhaar", "in_pan", "de_steuer_id",
                  "br_cpf", "ca_sin", "jp_my_number", "it_codice_fiscale", "nl_bsn", "pt_nif",
                  "gb_nhs"]


def national_id(rng: random.Random, kind: str = "") -> Out:
    kind = kind or rng.choice(NATIONAL_KINDS)
    fmt = rng.random() < 0.6  # the usual printed form, else compact
    if kind == "uk_nino":
        n = _nino(rng)
        value = f"{n[:2]} {n[2:4]} {n[4:6]} {n[6:8]} {n[8]}" if fmt else n
    elif kind == "fr_nir":
        n = _nir(rng)
        value = nir.format(n) if fmt else n
    elif kind == "es_dni":
        body = _digits(rng, 8)
        n = body + dni.calc_check_digit(body)
        value = f"{body}-{n[-1]}" if fmt and rng.random() < 0.3 else n
    elif kind == "es_nie":
        first = rng.choice("XYZ")
        body = _digits(rng, 7)
        value = first + body + nie.calc_check_digit(first + body)
    elif kind == "in_aadhaar":
        while True:
            body = str(rng.randint(2, 9)) + _digits(rng, 10)
            n = body + verhoeff.calc_check_digit(body)
            if aadhaar.is_valid(n):
                break
        value = aadhaar.format(n) if fmt else n
    elif kind == "in_pan":
        while True:
            value = (pick(rng, string.ascii_uppercase, 3) + rng.choice("PPPPCHF")
                     + pick(rng, string.ascii_uppercase, 1) + _digits(rng, 4)
                     + pick(rng, string.ascii_uppercase, 1))
            if pan.is_valid(value):
                break
    elif kind == "de_steuer_id":
        n = _idnr(rng)
        value = idnr.format(n) if fmt else n
    elif kind == "br_cpf":
        n = _cpf(rng)
        value = cpf.format(n) if fmt else n
    elif kind == "ca_sin":
        while True:
            n = _luhn_with(rng, rng.choice("1234567"), 9)
            if sin.is_valid(n):
                break
        value = sin.format(n) if fmt else n
    elif kind == "jp_my_number":
        body = str(rng.randint(1, 9)) + _digits(rng, 10)
        n = body + my_number.calc_check_digit(body)
        value = f"{n[:4]} {n[4:8]} {n[8:]}" if fmt else n
    elif kind == "it_codice_fiscale":
        value = _codice_fiscale(rng)
    elif kind == "nl_bsn":
        n = _eleven_proof(rng, [9, 8, 7, 6, 5, 4, 3, 2, -1], 9, str(rng.randint(1, 6)))
        value = bsn.format(n) if fmt else n
    elif kind == "pt_nif":
        while True:
            body = rng.choice("123") + _digits(rng, 7)
            n = body + nif.calc_check_digit(body)
            if nif.is_valid(n):
                break
        value = n if not fmt else f"{n[:3]} {n[3:6]} {n[6:]}"
    else:  # gb_nhs
        while True:
            n = _digits(rng, 10)
            if nhs.is_valid(n) and n[0] in "456789":
                break
        value = nhs.format(n) if fmt else n
    return value, kind


# --- network ------------------------------------------------------------------------------------
def ipv4(rng: random.Random, kind: str = "") -> Out:
    kind = kind or rng.choice(["private", "private", "doc", "public", "public", "cgnat"])
    if kind == "private":
        r = rng.randint
        addr = rng.choice([f"10.{r(0, 255)}.{r(0, 255)}.{r(1, 254)}",
                           f"192.168.{r(0, 255)}.{r(1, 254)}",
                           f"172.{r(16, 31)}.{r(0, 255)}.{r(1, 254)}"])
    elif kind == "doc":
        addr = rng.choice(["192.0.2", "198.51.100", "203.0.113"]) + f".{rng.randint(1, 254)}"
    elif kind == "cgnat":
        addr = f"100.{rng.randint(64, 127)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    else:
        while True:
            ip = ipaddress.IPv4Address(rng.getrandbits(32))
            if ip.is_global and not ip.is_multicast:
                addr = str(ip)
                break
    return addr, kind


def ipv6(rng: random.Random, form: str = "") -> Out:
    form = form or rng.choice(["compressed", "compressed", "compressed", "full", "no_zeros",
                               "v4mapped", "nat64", "link_local", "trailing", "upper", "ula"])
    prefix = rng.choice([0x20010DB8, 0x2A0104F8, 0x26001F18, 0x2A02C7C8, 0x24068600])
    groups = [prefix >> 16, prefix & 0xFFFF] + [rng.choice([0, rng.getrandbits(16),
                                                            rng.getrandbits(8)]) for _ in range(6)]
    if form in ("compressed", "upper", "full", "no_zeros"):
        zero_from = rng.randint(2, 5)
        for i in range(zero_from, zero_from + rng.randint(2, 3)):
            groups[i] = 0
    if form == "ula":
        groups[0] = 0xFD00 | rng.getrandbits(8)
    ip = ipaddress.IPv6Address(sum(g << (16 * (7 - i)) for i, g in enumerate(groups)))
    if form == "full":
        return ip.exploded, form
    if form == "no_zeros":
        return ":".join(f"{g:x}" for g in groups), form
    if form == "v4mapped":
        v4 = ipv4(rng, rng.choice(["doc", "private"]))[0]
        return rng.choice([f"::ffff:{v4}", f"::FFFF:{v4}"]), form
    if form == "nat64":
        return f"64:ff9b::{ipv4(rng, 'doc')[0]}", form
    if form == "link_local":
        return f"fe80::{rng.getrandbits(16):x}:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}:" \
               f"{rng.getrandbits(16):x}", form
    if form == "trailing":
        third, fourth = rng.getrandbits(16), rng.getrandbits(12)
        return f"{groups[0]:x}:{groups[1]:x}:{third:x}:{fourth:x}::", form
    text = ip.compressed
    return (text.upper() if form == "upper" else text), form


# --- tokens and keys ----------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random, alg: str = "") -> Out:
    alg = alg or rng.choice(["HS256", "RS256", "RS256", "ES256"])
    header: dict[str, str] = {"alg": alg, "typ": "JWT"}
    if alg != "HS256":
        header["kid"] = pick(rng, B64URL, 16)
    now = 1_700_000_000 + rng.randint(0, 60_000_000)
    payload = {"sub": str(rng.randint(10_000, 9_999_999)),
               "iss": f"https://auth.{rng.choice(COMPANY)}.example/",
               "aud": rng.choice(["api", "chat-api", "https://api.example.com"]),
               "iat": now, "exp": now + 3600}
    if rng.random() < 0.5:
        payload["email"] = email(rng, "plain")[0]
    if rng.random() < 0.4:
        payload["scope"] = "openid profile email"
    sig_len = {"HS256": 43, "RS256": 342, "ES256": 86}[alg]
    token = ".".join((_b64url(json.dumps(header, separators=(",", ":")).encode()),
                      _b64url(json.dumps(payload, separators=(",", ":")).encode()),
                      pick(rng, B64URL, sig_len)))
    return token, alg


def _pem_lines(head: str, total: int, width: int, rng: random.Random) -> str:
    body = head + pick(rng, B64, total - len(head))
    lines = [body[i:i + width] for i in range(0, len(body), width)]
    if rng.random() < 0.5 and width == 64:  # the last line of a real key is short
        lines[-1] = lines[-1][: max(8, len(lines[-1]) - rng.randint(4, 40))] + "=="
    return "\n".join(lines)


def pem(rng: random.Random, kind: str = "") -> Out:
    """The base64 body of a private key (the BEGIN and END lines are the template's)."""
    kind = kind or rng.choice(["rsa", "pkcs8", "ec", "openssh"])
    head, total, width = {"rsa": ("MIIEpAIBAAKCAQEA", 1600, 64),
                          "pkcs8": ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ", 1620, 64),
                          "ec": ("MHcCAQEEI", 160, 64),
                          "openssh": ("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMw"
                                      "AAAAtzc2gtZW", 380, 70)}[kind]
    return _pem_lines(head, total, width, rng), kind


def cloud(rng: random.Random, kind: str = "") -> Out:
    kind = kind or rng.choice(["aws_access_key_id", "aws_secret_access_key", "gcp_api_key",
                               "azure_storage_key", "azure_sas_signature", "azure_openai_key",
                               "aws_session_token"])
    if kind == "aws_access_key_id":
        return rng.choice(["AKIA", "AKIA", "ASIA"]) + pick(rng, B32, 16), kind
    if kind == "aws_secret_access_key":
        return pick(rng, B64, 40), kind
    if kind == "aws_session_token":
        return "IQoJb3JpZ2luX2VjE" + pick(rng, B64, rng.randint(300, 360)) + "=", kind
    if kind == "gcp_api_key":
        return "AIza" + pick(rng, B64URL, 35), kind
    if kind == "azure_storage_key":
        return pick(rng, B64, 86) + "==", kind
    if kind == "azure_sas_signature":  # URL-encoded base64 of a 32-byte HMAC
        raw = base64.b64encode(rng.randbytes(32)).decode()
        return raw.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D"), kind
    return pick(rng, HEX, 32), kind  # azure_openai_key


def api_token(rng: random.Random, kind: str = "") -> Out:
    kind = kind or rng.choice(["github_classic", "github_oauth", "github_fine_grained", "gitlab",
                               "slack_bot", "slack_user", "slack_app", "stripe_secret",
                               "stripe_restricted", "stripe_webhook", "openai_legacy",
                               "openai_project", "openai_service", "anthropic", "huggingface",
                               "npm", "pypi", "sendgrid", "databricks", "slack_webhook"])
    if kind == "github_classic":
        return "ghp_" + pick(rng, ALNUM, 36), kind
    if kind == "github_oauth":
        return rng.choice(["gho_", "ghu_", "ghs_", "ghr_"]) + pick(rng, ALNUM, 36), kind
    if kind == "github_fine_grained":
        return "github_pat_11" + pick(rng, string.ascii_uppercase + string.digits, 20) + "_" + \
            pick(rng, ALNUM, 59), kind
    if kind == "gitlab":
        return "glpat-" + pick(rng, B64URL, 20), kind
    if kind == "slack_bot":
        return f"xoxb-{_digits(rng, 12)}-{_digits(rng, 13)}-{pick(rng, ALNUM, 24)}", kind
    if kind == "slack_user":
        return f"xoxp-{_digits(rng, 12)}-{_digits(rng, 12)}-{_digits(rng, 13)}-" \
               f"{pick(rng, HEX, 32)}", kind
    if kind == "slack_app":
        return f"xapp-1-A{pick(rng, B32, 10)}-{_digits(rng, 13)}-{pick(rng, HEX, 64)}", kind
    if kind == "slack_webhook":
        return f"T{pick(rng, B32, 8)}/B{pick(rng, B32, 10)}/{pick(rng, ALNUM, 24)}", kind
    if kind == "stripe_secret":
        return "sk_live_" + pick(rng, ALNUM, rng.choice([24, 99])), kind
    if kind == "stripe_restricted":
        return "rk_live_" + pick(rng, ALNUM, rng.choice([24, 99])), kind
    if kind == "stripe_webhook":
        return "whsec_" + pick(rng, ALNUM, 32), kind
    if kind == "openai_legacy":
        return "sk-" + pick(rng, ALNUM, 20) + "T3BlbkFJ" + pick(rng, ALNUM, 20), kind
    if kind == "openai_project":
        return "sk-proj-" + pick(rng, B64URL, 156), kind
    if kind == "openai_service":
        return "sk-svcacct-" + pick(rng, B64URL, 156), kind
    if kind == "anthropic":
        return "sk-ant-api03-" + pick(rng, B64URL, 93) + "AA", kind
    if kind == "huggingface":
        return "hf_" + pick(rng, string.ascii_letters, 34), kind
    if kind == "npm":
        return "npm_" + pick(rng, ALNUM, 36), kind
    if kind == "pypi":
        return "pypi-AgEIcHlwaS5vcmc" + pick(rng, B64URL, 160), kind
    if kind == "sendgrid":
        return f"SG.{pick(rng, B64URL, 22)}.{pick(rng, B64URL, 43)}", kind
    return "dapi" + pick(rng, HEX, 32), kind  # databricks


WORDS = ["correct", "horse", "battery", "staple", "purple", "monkey", "dishwasher", "sunset",
         "granite", "falcon", "ocean", "maple", "river", "tiger", "velvet", "copper"]


def password(rng: random.Random, kind: str = "") -> Out:
    """A password; `url` ones are percent-encoded where a URL needs it."""
    style = rng.choice(["season", "leet", "random", "random", "passphrase", "pin_word"])
    if style == "season":
        value = rng.choice(["Summer", "Winter", "Spring", "Autumn", "Welcome", "Passw0rd",
                            "Bonjour", "Sommer", "Verano", "Primavera"]) + \
            str(rng.randint(2019, 2026)) + rng.choice(["!", "#", "$", "?", "!!", ""])
    elif style == "leet":
        value = rng.choice(["Tr0ub4dor&3", "S3cr3t!Pa55", "H4ppyD4ys#", "M0nk3y$Bus1ness",
                            "Dr4g0n_Fly!", "P@ssw0rd2024", "Qw3rty!Qw3rty"]) \
            + str(rng.randint(1, 99))
    elif style == "random":
        value = pick(rng, ALNUM + "!#$%&*-_?", rng.randint(14, 24))
    elif style == "passphrase":
        value = rng.choice(["-", "_", "."]).join(rng.sample(WORDS, 4))
    else:
        value = rng.choice(WORDS).capitalize() + _digits(rng, 4) + rng.choice("!?#")
    if kind == "url":
        value = value.replace("%", "%25").replace("@", "%40").replace(":", "%3A") \
            .replace("/", "%2F").replace("#", "%23").replace("?", "%3F").replace("&", "%26")
    return value, kind or style


def auth(rng: random.Random, kind: str = "") -> Out:
    kind = kind or rng.choice(["bearer", "bearer", "basic", "api_key", "session"])
    if kind == "basic":
        user = filler(rng, "user")
        return base64.b64encode(f"{user}:{password(rng)[0]}".encode()).decode(), kind
    if kind == "api_key":
        return rng.choice([pick(rng, HEX, 32), pick(rng, ALNUM, 40), _uuid(rng)]), kind
    if kind == "session":
        return pick(rng, B64URL, rng.choice([32, 43, 64])), kind
    return rng.choice([pick(rng, B64URL, rng.choice([32, 40, 64])),
                       "ya29." + pick(rng, B64URL, 120),
                       "EAAB" + pick(rng, ALNUM, 100)]), kind


# --- hard negatives -----------------------------------------------------------------------------
def _uuid(rng: random.Random) -> str:
    h = pick(rng, HEX, 32)
    h = h[:12] + "4" + h[13:16] + rng.choice("89ab") + h[17:]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _when(rng: random.Random) -> datetime:
    return datetime(2023, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 4 * 365 * 86400),
                                                        microseconds=rng.randint(0, 999_999))


def neg_version(rng: random.Random, kind: str = "") -> Out:
    kind = kind or rng.choice(["semver", "four_part", "four_part", "windows", "prerelease", "ua"])
    if kind == "semver":
        return f"{rng.randint(0, 25)}.{rng.randint(0, 40)}.{rng.randint(0, 30)}", kind
    if kind == "four_part":  # shaped like an IPv4 address
        return ".".join(str(rng.randint(0, 20 if i < 2 else 250)) for i in range(4)), kind
    if kind == "windows":
        return rng.choice([f"v10.0.{rng.choice([19041, 19045, 22621, 22631, 26100])}",
                           f"10.0.{rng.choice([19045, 22631])}.{rng.randint(1000, 4000)}",
                           f"16.0.{rng.randint(10000, 18000)}.{rng.randint(20000, 20200)}"]), kind
    if kind == "prerelease":
        return f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}-" \
               f"{rng.choice(['rc', 'beta', 'alpha'])}.{rng.randint(1, 5)}" \
               f"+build.{rng.randint(1, 900)}", kind
    return f"{rng.choice(['Chrome', 'Firefox', 'Edg'])}/{rng.randint(100, 131)}.0." \
           f"{rng.randint(1000, 6999)}.{rng.randint(10, 200)}", kind


MONTHS = {"en": ["January", "March", "July", "October"],
          "fr": ["janvier", "mars", "juillet", "octobre"],
          "de": ["Januar", "März", "Juli", "Oktober"], "es": ["enero", "marzo", "julio", "octubre"],
          "pt": ["janeiro", "março", "julho", "outubro"]}


def neg_date(rng: random.Random, kind: str = "") -> Out:
    d = _when(rng)
    kind = kind or rng.choice(["iso", "eu", "us", "dotted", "long", "ja", "iso_dt"])
    if kind == "iso":
        return d.strftime("%Y-%m-%d"), kind
    if kind == "eu":
        return d.strftime("%d/%m/%Y"), kind
    if kind == "us":
        return d.strftime("%m/%d/%Y"), kind
    if kind == "dotted":
        return d.strftime("%d.%m.%Y"), kind
    if kind == "ja":
        return f"{d.year}年{d.month}月{d.day}日", kind
    if kind == "iso_dt":
        return d.strftime("%Y-%m-%dT%H:%M:%S") + rng.choice(["Z", "+02:00", ".123Z"]), kind
    lang = rng.choice(list(MONTHS))
    month = rng.choice(MONTHS[lang])
    if lang == "en":
        return f"{month} {d.day}, {d.year}", kind
    if lang in ("es", "pt"):
        return f"{d.day} de {month} de {d.year}", kind
    return f"{d.day}. {month} {d.year}" if lang == "de" else f"{d.day} {month} {d.year}", kind


def neg_time(rng: random.Random, kind: str = "") -> Out:
    h, m, s = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    return rng.choice([f"{h:02d}:{m:02d}:{s:02d}", f"{h:02d}:{m:02d}", f"{h % 12 or 12}:{m:02d} "
                       f"{'PM' if h >= 12 else 'AM'}", f"{h:02d}h{m:02d}",
                       f"{h:02d}:{m:02d}:{s:02d}.{rng.randint(0, 999):03d}"]), "clock"


def neg_timestamp(rng: random.Random, kind: str = "") -> Out:
    d = _when(rng)
    kind = kind or rng.choice(["epoch_s", "epoch_ms", "epoch_us_luhn", "epoch_us_luhn",
                               "epoch_ns", "iso"])
    micros = int(d.timestamp()) * 1_000_000 + d.microsecond
    if kind == "epoch_s":
        return str(micros // 1_000_000), kind
    if kind == "epoch_ms":
        return str(micros // 1000), kind
    if kind == "epoch_us_luhn":  # 16 digits that pass the Luhn check, like a card number
        body = str(micros)[:-1]
        return body + std_luhn.calc_check_digit(body), kind
    if kind == "epoch_ns":
        return str(micros * 1000 + rng.randint(0, 999)), kind
    return d.isoformat(timespec="microseconds").replace("+00:00", "Z"), kind


def neg_order(rng: random.Random, kind: str = "") -> Out:
    kind = kind or rng.choice(["amazon", "digits16", "digits16", "po", "invoice", "digits12"])
    if kind == "amazon":
        return f"{rng.randint(100, 999)}-{_digits(rng, 7)}-{_digits(rng, 7)}", kind
    if kind == "digits16":
        return str(rng.randint(1, 9)) + _digits(rng, 15), kind
    if kind == "digits12":
        return str(rng.randint(1, 9)) + _digits(rng, 11), kind
    if kind == "po":
        return f"PO-{rng.randint(2022, 2026)}-{_digits(rng, 5)}", kind
    return f"INV-{rng.randint(2022, 2026)}{rng.randint(1, 12):02d}-{_digits(rng, 4)}", kind


def neg_ticket(rng: random.Random, kind: str = "") -> Out:
    project = rng.choice(["JIRA", "OPS", "SRE", "LLM", "PAY"])
    return rng.choice([f"{project}-{rng.randint(10, 9999)}",
                       f"INC{_digits(rng, 7)}", f"#{rng.randint(1000, 99999)}",
                       f"CS-{rng.randint(2022, 2026)}-{_digits(rng, 6)}",
                       f"CHG{_digits(rng, 7)}", f"case {_digits(rng, 8)}"]), "ticket"


def neg_tracking(rng: random.Random, kind: str = "") -> Out:
    return rng.choice([f"1Z{pick(rng, B32, 6)}{_digits(rng, 10)}",
                       " ".join(_digits(rng, 4) for _ in range(5)) + " " + _digits(rng, 2),
                       _digits(rng, 12), f"JD{_digits(rng, 18)}",
                       f"LX{_digits(rng, 9)}FR"]), "parcel"


def neg_isbn(rng: random.Random, kind: str = "") -> Out:
    body = rng.choice(["978", "979"]) + _digits(rng, 9)
    number = body + std_ean.calc_check_digit(body)
    if rng.random() < 0.3:
        number10 = std_isbn.to_isbn10(number) if number.startswith("978") else None
        if number10:
            return std_isbn.format(number10), "isbn10"
    return (std_isbn.format(number) if rng.random() < 0.7 else number), "isbn13"


def neg_uuid(rng: random.Random, kind: str = "") -> Out:
    u = _uuid(rng)
    return rng.choice([u, u, u.upper(), "{" + u + "}", "urn:uuid:" + u]), "uuid4"


def neg_hash(rng: random.Random, kind: str = "") -> Out:
    kind = kind or rng.choice(["git_short", "git", "sha256", "md5", "docker_digest"])
    return {"git_short": pick(rng, HEX, rng.choice([7, 8, 12])), "git": pick(rng, HEX, 40),
            "sha256": pick(rng, HEX, 64), "md5": pick(rng, HEX, 32),
            "docker_digest": "sha256:" + pick(rng, HEX, 64)}[kind], kind


def neg_trace_id(rng: random.Random, kind: str = "") -> Out:
    kind = kind or rng.choice(["trace_id", "span_id", "traceparent"])
    if kind == "trace_id":
        return pick(rng, HEX, 32), kind
    if kind == "span_id":
        return pick(rng, HEX, 16), kind
    return f"00-{pick(rng, HEX, 32)}-{pick(rng, HEX, 16)}-01", kind


def neg_math(rng: random.Random, kind: str = "") -> Out:
    a, b = rng.randint(100, 99999), rng.randint(10, 9999)
    return rng.choice([f"{a} × {b} = {a * b}", f"{a} * {b} = {a * b}", f"{a} + {b} = {a + b}",
                       f"2^{rng.randint(20, 60)} = {2 ** rng.randint(20, 60)}",
                       f"({a} - {b}) / {rng.randint(2, 9)}", f"{a}/{b} ≈ {a / b:.4f}",
                       f"x = {a}, y = {b}, x·y = {a * b}",
                       " ".join(str(i * i) for i in range(1, rng.randint(8, 12))),
                       f"{rng.randint(1, 9)}.{_digits(rng, 12)}",
                       f"det = {a}·{b} − {rng.randint(100, 999)}·{rng.randint(100, 999)}"]), "math"


def neg_gps(rng: random.Random, kind: str = "") -> Out:
    lat, lon = rng.uniform(-60, 70), rng.uniform(-170, 170)
    return rng.choice([f"{lat:.4f}, {lon:.4f}", f"{lat:.6f},{lon:.6f}", f"geo:{lat:.5f},{lon:.5f}",
                       f"{abs(int(lat))}°{rng.randint(0, 59)}′{rng.randint(0, 59)}″"
                       f"{'N' if lat > 0 else 'S'} {abs(int(lon))}°{rng.randint(0, 59)}′"
                       f"{rng.randint(0, 59)}″{'E' if lon > 0 else 'W'}"]), "coordinates"


def neg_postcode(rng: random.Random, kind: str = "") -> Out:
    return rng.choice(["SW1A 1AA", "EC1A 1BB", "75008", "69002", "10115", "80331", "28013", "08001",
                       "100-0001", "530-0001", "110001", "560001", "01310-100", "20040-020",
                       "K1A 0B6", "M5V 3L9", "90210", "20500-0003", "1012 JS", "00184",
                       "1000-001", "2000"]), "postcode"


def neg_mac(rng: random.Random, kind: str = "") -> Out:
    octets = [rng.getrandbits(8) for _ in range(6)]
    kind = kind or rng.choice(["colon", "colon", "dash", "cisco"])
    if kind == "colon":
        text = ":".join(f"{o:02x}" for o in octets)
        return (text.upper() if rng.random() < 0.5 else text), kind
    if kind == "dash":
        return "-".join(f"{o:02X}" for o in octets), kind
    h = "".join(f"{o:02x}" for o in octets)
    return f"{h[:4]}.{h[4:8]}.{h[8:]}", kind


def neg_product(rng: random.Random, kind: str = "") -> Out:
    ean_body = rng.choice(["400", "300", "590", "690", "789", "871"]) + _digits(rng, 9)
    ean_check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(ean_body)) % 10) % 10
    return rng.choice([f"SKU-{_digits(rng, 5)}-{rng.choice(['BLK', 'WHT', 'RED', 'XL'])}",
                       ean_body + str(ean_check), f"B0{pick(rng, B32, 8)}",
                       f"{rng.choice(['RX', 'TX', 'MX'])}-{rng.randint(100, 999)}"
                       f"{rng.choice('ABC')}",
                       f"HS {rng.randint(1000, 9999)}.{rng.randint(10, 99)}.{rng.randint(10, 99)}",
                       f"P/N {_digits(rng, 3)}-{_digits(rng, 4)}-{_digits(rng, 2)}"]), "product"


def neg_placeholder(rng: random.Random, kind: str = "") -> Out:
    return rng.choice(["sk-...", "YOUR_API_KEY", "<your-api-key>", "sk-xxxxxxxxxxxxxxxxxxxxxxxx",
                       "${OPENAI_API_KEY}", "$ANTHROPIC_API_KEY", "os.environ[\"HF_TOKEN\"]",
                       "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "<token>", "sk-proj-...",
                       "AKIAXXXXXXXXXXXXXXXX", "xoxb-your-token", "REPLACE_ME", "changeme",
                       "<password>", "${DB_PASSWORD}", "hf_***", "sk_live_...",
                       "{{ secrets.GITHUB_TOKEN }}", "********"]), "placeholder"


def neg_oid(rng: random.Random, kind: str = "") -> Out:
    return rng.choice(["1.3.6.1.2.1.1.3.0", "1.3.6.1.4.1.2021.10.1.3.1", "2.5.4.3",
                       "1.2.840.113549.1.1.11", "1.3.6.1.2.1.2.2.1.10.2",
                       "2.16.840.1.101.3.4.2.1"]), "oid"


def neg_doi(rng: random.Random, kind: str = "") -> Out:
    registrant = rng.randint(1000, 9999)
    return f"10.{registrant}/{rng.choice(['nature', 'j.cell', 's41586-0', 'arxiv.'])}" \
           f"{rng.randint(10000, 99999)}", "doi"


def neg_pkgref(rng: random.Random, kind: str = "") -> Out:
    return rng.choice(["git@github.com:acme/api.git", "@dataclass(frozen=True)", "@app.route",
                       f"react@{rng.randint(16, 19)}.{rng.randint(0, 3)}.{rng.randint(0, 9)}",
                       "@types/node", "@media (max-width: 600px)", "@pytest.mark.parametrize",
                       "git@gitlab.com:infra/charts.git", f"lodash@4.17.{rng.randint(15, 21)}",
                       "@Override", "@angular/core"]), "at_sign"


def neg_amount(rng: random.Random, kind: str = "") -> Out:
    v = rng.randint(100, 9_999_999)
    return rng.choice([f"${v:,}.{rng.randint(0, 99):02d}", f"€{v:,}".replace(",", ".") + ",00",
                       f"₹{v:,}", f"¥{v:,}",
                       f"R$ {v:,}".replace(",", ".") + f",{rng.randint(0, 99):02d}",
                       f"{v:,} USD"]), "money"


POSITIVE: dict[str, tuple[str, Callable[..., Out]]] = {
    "email": ("email", email), "phone": ("phone", phone), "card": ("card", card),
    "iban": ("iban", iban), "bank": ("bank_account", bank), "ssn": ("us_ssn", us_ssn),
    "nid": ("national_id", national_id), "ipv4": ("ipv4", ipv4), "ipv6": ("ipv6", ipv6),
    "jwt": ("jwt", jwt), "pem": ("private_key", pem), "cloud": ("cloud_credential", cloud),
    "token": ("api_token", api_token), "password": ("password", password),
    "auth": ("auth_header", auth),
}
NEGATIVE: dict[str, tuple[str, Callable[..., Out]]] = {
    "version": ("version", neg_version), "date": ("date", neg_date), "time": ("time", neg_time),
    "timestamp": ("timestamp", neg_timestamp), "order": ("order_number", neg_order),
    "ticket": ("ticket", neg_ticket), "tracking": ("tracking_number", neg_tracking),
    "isbn": ("isbn", neg_isbn), "uuid": ("uuid", neg_uuid), "hash": ("hash", neg_hash),
    "trace": ("trace_id", neg_trace_id), "math": ("math", neg_math), "gps": ("gps", neg_gps),
    "postcode": ("postcode", neg_postcode), "mac": ("mac_address", neg_mac),
    "product": ("product_code", neg_product), "placeholder": ("placeholder_key", neg_placeholder),
    "oid": ("oid", neg_oid), "doi": ("doi", neg_doi), "pkgref": ("package_ref", neg_pkgref),
    "amount": ("amount", neg_amount),
}
