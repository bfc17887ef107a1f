"""Keys and tokens: provider keys by their documented prefixes (the rules of gitleaks and
trufflehog), an AWS secret key beside its key id, JWTs, PEM private keys, Authorization
headers (Bearer, Basic), and long random strings that a word like "secret" introduces.

A prefix alone is not enough: a key must hold a digit or both cases and be no placeholder
(`sk-learn-style-names`, `sk-proj-XXXXXXXX`, `your-key-here`); a string found by its context
alone must also look random (entropy).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable

from watchkeeper.agent.sidecar.redaction.text import Finding, Text, entropy, mentions, positions

_PROVIDER_KEYS = (
    r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}",  # AWS access key id
    r"AIza[0-9A-Za-z_-]{35}",  # Google API key
    r"GOCSPX-[0-9A-Za-z_-]{28}",  # Google OAuth client secret
    r"ya29\.[0-9A-Za-z_-]{20,}",  # Google OAuth access token
    r"gh[pousr]_[A-Za-z0-9]{36,255}",  # GitHub
    r"github_pat_[A-Za-z0-9_]{22,255}",
    r"gl(?:pat|dt|ft|rt|soat|cbt|imt|ptt)-[A-Za-z0-9_-]{20,}",  # GitLab
    r"xox[abeoprs]-[A-Za-z0-9-]{10,}",  # Slack
    r"xapp-\d-[A-Za-z0-9-]{20,}",
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,99}",  # Stripe
    r"sk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_-]{20,}",  # Anthropic
    r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",  # OpenAI and OpenAI-compatible APIs
    r"(?:hf|api_org)_[A-Za-z0-9]{30,}",  # Hugging Face
    r"npm_[A-Za-z0-9]{36}",
    r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}",
    r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",  # SendGrid
    r"SK[0-9a-fA-F]{32}",  # Twilio
    r"key-[0-9a-zA-Z]{32}",  # Mailgun
    r"dapi[a-f0-9]{32}(?:-\d)?",  # Databricks
    r"do[opr]_v1_[a-f0-9]{64}",  # DigitalOcean
    r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",  # Shopify
    r"xai-[A-Za-z0-9]{40,}",  # xAI
    r"gsk_[A-Za-z0-9]{40,}",  # Groq
    r"r8_[A-Za-z0-9]{30,}",  # Replicate
    r"pplx-[A-Za-z0-9]{40,}",  # Perplexity
    r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}",  # LangSmith
    r"pcsk_[A-Za-z0-9_]{40,}",  # Pinecone
    r"hvs\.[A-Za-z0-9_-]{90,}",  # HashiCorp Vault
    r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
    r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}",  # Postman
    r"sntrys_[A-Za-z0-9+/=_]{40,}",  # Sentry
    r"sbp_[a-f0-9]{40}",  # Supabase
    r"(?:ntn|secret)_[A-Za-z0-9]{40,}",  # Notion
    r"lin_api_[A-Za-z0-9]{40}",  # Linear
    r"dp\.pt\.[A-Za-z0-9]{43}",  # Doppler
    r"glc_[A-Za-z0-9+/]{32,}={0,2}",  # Grafana Cloud
    r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",  # Grafana service account
    r"sq0(?:atp|csp)-[0-9A-Za-z_-]{22,43}",  # Square
    r"ATATT3[A-Za-z0-9_=-]{150,}",  # Atlassian
    r"\d{8,10}:AA[0-9A-Za-z_-]{33}",  # Telegram bot
    r"T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{24}",  # Slack webhook path
    r"(?:IQoJb3JpZ2luX2Vj|FwoGZXIvYXdzE)[A-Za-z0-9/+=]{40,}",  # AWS session token
    r"[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}",  # Azure AD client secret
    r"whsec_[A-Za-z0-9+/=]{24,}",  # Stripe webhook secret
    r"NRAK-[A-Z0-9]{27}",  # New Relic
    r"figd_[A-Za-z0-9_-]{40,}",  # Figma
    r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}",  # Brevo
    r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{32,}",  # PlanetScale
    r"pul-[a-f0-9]{40}",  # Pulumi
    r"(?:fo1|rnd|re|fw|csk)_[A-Za-z0-9_-]{24,}",  # Fly.io, Render, Resend, Fireworks, Cerebras
    r"sl\.[A-Za-z0-9_-]{130,}",  # Dropbox
    r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}",  # Airtable
    r"[a-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}",  # Terraform Cloud
    r"[0-9a-f]{32}-us\d{1,2}",  # Mailchimp
    r"[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}",  # Discord bot
    r"1//0[A-Za-z0-9_-]{40,}",  # Google OAuth refresh token
)
_PROVIDER = re.compile(r"(?<![A-Za-z0-9_-])(?:" + "|".join(_PROVIDER_KEYS) + r")(?![A-Za-z0-9_-])")
_JWT = re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_LOOKBACK = 12  # a Telegram token's digits stand before the run, across its ':'


def provider_keys(text: Text) -> list[Finding]:
    s = text.text
    found = [Finding(m.start(), m.end(), "api_key", m.group())
             for start, end in text.token_runs()
             for m in _PROVIDER.finditer(s, max(0, start - _LOOKBACK), end) if _key_body(m.group())]
    # an AWS secret key has no prefix of its own; it stands next to its access key id
    return found + [secret for f in found if f.value.startswith(_AWS_IDS)
                    for secret in _aws_secrets(s, f.end)]


_PREFIX = re.compile(r"^(?:[A-Za-z0-9]{1,12}[_\-.])+")
_PLACEHOLDER_WORDS = ("xxxx", "your", "here", "placeholder", "dummy", "fake", "redacted",
                      "changeme", "insert", "replace", "<", "...", "****")
_AWS_IDS = ("AKIA", "ASIA", "ABIA", "ACCA", "A3T")  # the access key ids' prefixes
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def _key_body(key: str) -> bool:
    """The part after the provider's prefix (sk-proj-, ghp_, xoxb-) holds a digit or both
    cases, is not one character repeated, and says nothing like "your key here"."""
    body = _PREFIX.sub("", key) or key
    lower = key.lower()
    return (mixed(body) and len(set(body)) > 1
            and not any(w in lower for w in _PLACEHOLDER_WORDS))


def _aws_secrets(s: str, after: int) -> list[Finding]:
    match = _AWS_SECRET.search(s, after, after + 120)
    if match is None or not looks_random(match.group()):
        return []
    return [Finding(match.start(), match.end(), "api_key", match.group())]


def looks_random(body: str) -> bool:
    """A digit, or both cases, and enough entropy: what a generated key has and a
    placeholder (sk_test_xxxxxxxx) or a hyphenated name (sk-learn-style-names) has not."""
    return mixed(body) and entropy(body) >= 3.0


def mixed(text: str) -> bool:
    return any(c.isdigit() for c in text) or (text.lower() != text and text.upper() != text)


def jwts(text: Text) -> list[Finding]:
    s = text.text
    return [Finding(m.start(), m.end(), "jwt", m.group())
            for start, end in text.token_runs() if s.find("eyJ", start, end) >= 0
            for m in _JWT.finditer(s, start, end) if _jwt_header(m.group().split(".", 1)[0])]


def _jwt_header(segment: str) -> bool:
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # nested past the parser's depth
        return False
    return isinstance(header, dict) and ("alg" in header or "typ" in header)


# A PEM private key, whole or cut short, with real or JSON-escaped (\n) line breaks.
_PEM_LABEL = r"-----{}[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
_PEM_BODY = r"(?:[A-Za-z0-9+/=:,.\s-]|\\[nr])*"
_PEM = re.compile(_PEM_LABEL.format("BEGIN") + rf"(?:{_PEM_BODY}?{_PEM_LABEL.format('END')}"
                  rf"|{_PEM_BODY})")


def private_keys(text: Text) -> list[Finding]:
    s = text.text
    found: list[Finding] = []
    at = s.find("-----BEGIN")
    while at >= 0:
        match = _PEM.match(s, at)
        body = match.group().rstrip() if match else ""
        if body:
            found.append(Finding(at, at + len(body), "private_key", body))
        at = s.find("-----BEGIN", at + max(1, len(body)))
    return found


_BEARER = re.compile(r"(?<![\w-])bearer\s*:?\s*(?P<token>[A-Za-z0-9\-._~+/]{8,}=*)",
                     re.IGNORECASE)
_BASIC = re.compile(r"(?<![\w-])basic\s*:?\s*(?P<token>[A-Za-z0-9+/]{6,}={0,2})(?![\w+/=])",
                    re.IGNORECASE)


def auth_headers(text: Text) -> list[Finding]:
    """`Bearer <token>` and `Basic <base64 of user:password>` (with or without a colon
    after the scheme): the scheme goes with the token, as in the header's value."""
    s, lower = text.text, text.lower
    found: list[Finding] = []
    words = text.words
    for at in positions(lower, "bearer") if b"bearer" in words else []:
        match = _BEARER.match(s, at)
        if match is not None and _token_like(match.group("token")):
            found.append(Finding(at, match.end(), "bearer", match.group("token")))
    for at in positions(lower, "basic") if b"basic" in words else []:
        match = _BASIC.match(s, at)
        if match is not None and _user_password(match.group("token")):
            found.append(Finding(at, match.end(), "basic_auth", match.group("token")))
    return found


def _token_like(token: str) -> bool:
    return len(token) >= 24 or mixed(token)


def _user_password(token: str) -> bool:
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return False
    return ":" in decoded and decoded.isprintable()


# The checks the compiled detectors leave to Python (compiled.py), by name: Basic credentials
# that decode to text beyond ASCII (str.isprintable is Unicode's), or padded after a whole
# quad ("abcdefgh="), which b64decode(validate=True) takes before Python 3.13 and not since;
# a JWT header nested deeper than json's recursion allows for sure.
CHECKS: dict[str, Callable[[str], bool]] = {"basic_auth": _user_password,
                                            "jwt_header": _jwt_header}


_SECRET_WORDS = ("secret", "token", "password", "passwd", "api key", "apikey", "api_key",
                 "credential", "private key", "access key", "auth")
GENERIC_MIN = 20


def introduced_secrets(text: Text) -> list[Finding]:
    """A long random string that a word like "secret" or "token" stands just before."""
    s = text.text
    found: list[Finding] = []
    for start, end in text.token_runs():
        run = s[start:end].strip(".-=/+")
        if len(run) < GENERIC_MIN or not mentions(text.before(start, 32), _SECRET_WORDS):
            continue
        if looks_random(run) and entropy(run) >= 3.5 and not run.startswith(("http", "www.")):
            first = start + s[start:end].index(run)
            found.append(Finding(first, first + len(run), "api_key", run))
    return found
