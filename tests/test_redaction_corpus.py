"""The PII and secrets corpus (bench/pii/) is what its labels say: every span is where it
claims, every checksummed item is valid, the hard negatives that look like cards pass or fail
Luhn as labelled, and the JSON-encoded cases decode to the labelled text. Also the scoring
rules that docs/redaction.md describes. Needs no reference detector (Presidio, detect-secrets)."""

from __future__ import annotations

import base64
import importlib.util
import ipaddress
import itertools
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from stdnum import iban as std_iban
from stdnum.br import cpf
from stdnum.ca import sin
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar, pan
from stdnum.it import codicefiscale
from stdnum.jp import in_ as my_number
from stdnum.nl import bsn
from stdnum.pt import nif
from stdnum.us import rtn, ssn

_spec = importlib.util.spec_from_file_location(
    "_pii", Path(__file__).resolve().parents[1] / "bench" / "_pii.py")
assert _spec is not None and _spec.loader is not None
pii = importlib.util.module_from_spec(_spec)
sys.modules["_pii"] = pii
_spec.loader.exec_module(pii)

CASES = {split: pii.load(split) for split in pii.SPLITS}
ALL = [case for cases in CASES.values() for case in cases]
POSITIVE_CATEGORIES = {"email", "phone", "card", "iban", "bank_account", "us_ssn", "national_id",
                       "ipv4", "ipv6", "jwt", "private_key", "cloud_credential", "api_token",
                       "password", "auth_header"}
NEGATIVE_CATEGORIES = {"version", "date", "time", "timestamp", "order_number", "ticket", "isbn",
                       "uuid", "hash", "math", "gps", "postcode", "mac_address", "product_code",
                       "placeholder_key"}
NATIONAL = {"fr_nir": nir, "es_dni": dni, "es_nie": nie, "in_aadhaar": aadhaar, "in_pan": pan,
            "de_steuer_id": idnr, "br_cpf": cpf, "ca_sin": sin, "jp_my_number": my_number,
            "it_codice_fiscale": codicefiscale, "nl_bsn": bsn, "pt_nif": nif, "gb_nhs": nhs}
NINO = re.compile(r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]")
TOKEN_PREFIX = {"github_classic": "ghp_", "github_fine_grained": "github_pat_",
                "gitlab": "glpat-", "slack_bot": "xoxb-", "slack_user": "xoxp-",
                "slack_app": "xapp-", "stripe_secret": "sk_live_", "stripe_restricted": "rk_live_",
                "stripe_webhook": "whsec_", "openai_project": "sk-proj-",
                "openai_service": "sk-svcacct-", "anthropic": "sk-ant-api03-",
                "huggingface": "hf_", "npm": "npm_", "pypi": "pypi-", "sendgrid": "SG.",
                "databricks": "dapi"}


def labelled(kind: str) -> list[dict[str, Any]]:
    return [i for c in ALL for i in [*c["items"], *c["negatives"]] if
            f'{i["category"]}/{i["kind"]}'.startswith(kind)]


def test_size_and_coverage_per_split() -> None:
    for split, cases in CASES.items():
        positives = Counter(i["category"] for c in cases for i in c["items"])
        negatives = Counter(i["category"] for c in cases for i in c["negatives"])
        assert set(positives) == POSITIVE_CATEGORIES, split
        assert set(negatives) >= NEGATIVE_CATEGORIES, split
        assert min(positives.values()) >= 16, (split, positives)
        assert sum(positives.values()) >= 600 and sum(negatives.values()) >= 400, split
        assert sum(not c["items"] for c in cases) >= 100, "negative-only texts"
        assert len({c["lang"] for c in cases}) >= 8
        assert len({c["format"] for c in cases}) >= 10
    phone_regions = {i["kind"].split("/")[0] for i in labelled("phone/")}
    assert len(phone_regions) >= 15
    assert len({i["kind"] for i in labelled("national_id/")}) >= 10
    # the held-out split is not the dev split's sentences
    assert not {c["template"] for c in CASES["dev"]} & {c["template"] for c in CASES["heldout"]}
    dev_values = {i["text"] for c in CASES["dev"] for i in c["items"]}
    heldout_values = [i["text"] for c in CASES["heldout"] for i in c["items"]]
    assert sum(v in dev_values for v in heldout_values) <= 0.01 * len(heldout_values)


@pytest.mark.parametrize("split", pii.SPLITS)
def test_every_span_is_its_text(split: str) -> None:
    for case in CASES[split]:
        text = pii.view(case)
        spans = sorted((s["start"], s["end"]) for s in pii.spans(case))
        for span in pii.spans(case):
            assert 0 <= span["start"] < span["end"] <= len(text), case["id"]
            assert text[span["start"]:span["end"]] == span["text"], (case["id"], span)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"{case['id']}: labelled spans overlap"


def test_json_cases_decode_to_the_labelled_text() -> None:
    encoded = [c for c in ALL if c["encoding"] == "json"]
    assert len(encoded) >= 200
    for case in encoded:
        json.loads(case["text"])  # what the sidecar receives is valid JSON
        assert pii.decode_escapes(case["text"]) == case["decoded"], case["id"]
    raw = "".join(c["text"] for c in encoded)
    for escape in ("\\u0040", "\\u00", "\\/", "\\u003c", "\\n", '\\"'):
        assert escape in raw, escape
    # an escaped item: its labelled (decoded) text is not in the raw text as such
    assert any(i["text"] not in c["text"] for c in encoded for i in c["items"])


def test_checksummed_items_are_valid() -> None:
    cards = labelled("card/")
    assert cards and all(pii.luhn_ok(pii.digits_of(i["text"])) for i in cards)
    ibans = labelled("iban/")
    assert ibans and all(pii.iban_ok(i["text"]) and std_iban.is_valid(i["text"]) for i in ibans)
    for item in labelled("us_ssn/"):
        assert ssn.is_valid(item["text"].replace(" ", "")), item  # stdnum reads no spaces
    routing = labelled("bank_account/us_routing")
    assert routing and all(rtn.is_valid(i["text"]) for i in routing)
    for item in labelled("national_id/"):
        kind, value = item["kind"], item["text"]
        if kind == "uk_nino":
            assert NINO.fullmatch(value.replace(" ", "")), item
        else:
            assert NATIONAL[kind].is_valid(value), item


def test_items_have_their_shape() -> None:
    for item in labelled("phone/"):
        region, style = item["kind"].split("/")
        number = phonenumbers.parse(item["text"].replace("(0)", ""),
                                    "DE" if style == "intl00" else region)
        assert phonenumbers.is_valid_number(number), item
        assert phonenumbers.region_code_for_number(number) == region or (
            number.country_code == 1 and region in ("US", "CA")), item
    for item in labelled("ipv4/"):
        ipaddress.IPv4Address(item["text"])
    for item in labelled("ipv6/"):
        ipaddress.IPv6Address(item["text"])
    for item in labelled("jwt/"):
        header, payload, signature = item["text"].split(".")
        assert json.loads(base64.urlsafe_b64decode(header + "==")).get("alg") == item["kind"]
        assert "iat" in json.loads(base64.urlsafe_b64decode(payload + "=="))
        assert len(signature) >= 43
    for item in labelled("api_token/"):
        if item["kind"] in TOKEN_PREFIX:
            assert item["text"].startswith(TOKEN_PREFIX[item["kind"]]), item
    for item in labelled("cloud_credential/aws_access_key_id"):
        assert re.fullmatch(r"(AKIA|ASIA)[A-Z2-7]{16}", item["text"]), item
    for item in labelled("cloud_credential/gcp_api_key"):
        assert re.fullmatch(r"AIza[0-9A-Za-z_-]{35}", item["text"]), item
    for item in labelled("private_key/"):
        assert len(item["text"]) > 100 and "-----" not in item["text"], item
    for item in labelled("email/"):
        assert re.search(r"@|%40|\bat\b|\(at\)|\[at\]|\{at\}|arobase|arroba", item["text"],
                         re.IGNORECASE), item


def test_card_like_negatives_pass_or_fail_luhn_as_labelled() -> None:
    flagged = [n for c in ALL for n in c["negatives"] if "luhn" in n]
    for negative in flagged:
        compact = re.sub(r"[\s\-./]", "", negative["text"])
        assert compact.isdigit() and 13 <= len(compact) <= 19, negative
        assert pii.luhn_ok(compact) == negative["luhn"], negative
    passing = [n for n in flagged if n["luhn"]]
    assert len(passing) >= 40 and len(flagged) - len(passing) >= 100
    epochs = labelled("timestamp/epoch_us_luhn")
    assert epochs and all(len(n["text"]) == 16 and n["luhn"] for n in epochs)


def test_scoring_rules() -> None:
    item = {"start": 6, "end": 25, "text": "4111 1111 1111 1111"}
    source = "card: 4111 1111 1111 1111, order 55"
    assert pii.item_survives(source, "card: [REDACTED:card], order 55", item) is None
    assert pii.item_survives(source, source, item) == "exact"
    # the last group kept: a 4-character run of the item is still there
    assert pii.item_survives(source, "card: [REDACTED:card] 1111, order 55", item) == "run"
    phone = {"start": 5, "end": 22, "text": "+33 6 12 34 56 78"}
    text = "tel. +33 6 12 34 56 78 !"
    # only the country code went: 7 consecutive digits of it are still there
    assert pii.item_survives(text, "tel. [REDACTED:phone] 6 12 34 56 78 !", phone) == "digits"
    assert pii.item_survives(text, "tel. +33 6 12 [REDACTED:phone] !", phone) is None
    # a fragment that also occurs elsewhere in the input is not held against the redactor
    email = {"start": 0, "end": 16, "text": "anna@example.org"}
    source = "anna@example.org wrote about example.org"
    assert pii.item_survives(source, "[REDACTED:email] wrote about example.org", email) is None
    negative = {"text": "1.2.3.4"}
    assert not pii.negative_touched("v1.2.3.4", "v1.2.3.4", negative)
    assert pii.negative_touched("v1.2.3.4", "v[REDACTED:ip]", negative)
