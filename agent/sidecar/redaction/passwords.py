"""Passwords and secrets named as such: in URLs (`scheme://user:pass@host`), in settings and
connection strings (`password=…`, `api_key: "…"`, `Pwd=…;`, `X-API-Key: …`), on command lines
(`curl -u user:pass`), in login calls, and in prose in a dozen languages ("my password is …").
"""

from __future__ import annotations

import re

from watchkeeper.agent.sidecar.redaction.keys import looks_random, mixed
from watchkeeper.agent.sidecar.redaction.text import Finding, Text, positions

# postgres://user:secret@db:5432/app: the password, not the user or the host
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@?#\"']*:(?P<password>[^\s@/?#\"']+)@")
_SCHEME_BEFORE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")


def url_passwords(text: Text) -> list[Finding]:
    s = text.text
    found: list[Finding] = []
    if ":" not in s:
        return found
    for at in positions(s, "://"):
        scheme = _SCHEME_BEFORE.search(s, max(0, at - 24), at)
        match = _URL_PASSWORD.match(s, scheme.start()) if scheme else None
        if match is not None:
            found.append(Finding(match.start("password"), match.end("password"), "password",
                                 match.group("password")))
    return found


# Names of settings that hold a secret, as keys of key=value text, of JSON and of key-value
# lists (read in snake_case: apiKey, X-API-Key and api_key alike). A bare `token` is not one:
# model output calls its word pieces tokens.
_SECRET_NAME = re.compile(
    r"(?:^|_|(?=password|passwd|passphrase))(?:(?P<password>pass(?:word|wd|phrase|code)?|pwd)"
    r"|(?P<key>secret|client_secret"
    r"|api_?key|access_key|secret_(?:access_)?key|private_key(?:_id)?"
    r"|(?:access|auth|refresh|id|session|bearer|api|security)_token|credentials?|account_?key"
    r"|shared_?access_?(?:key|signature)|sig|session(?:_?id)?|sid|phpsessid|jsessionid))(?:$|_)")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATOR = re.compile(r"[-.]")
_NAME_ROOT = re.compile(r"pass|pwd|secret|key|token|credential|sig|sid|session", re.IGNORECASE)
# The name before a separator, matched on the reversed text (`"password": …`, `Pwd=…`)
_NAME_REVERSED = re.compile(r"[ \t]*[\"']?(?P<name>[\w.-]{1,64})")
_VALUE = re.compile(r"[ \t]*(?:\"(?P<dq>[^\"\r\n]{1,4096})\"|'(?P<sq>[^'\r\n]{1,4096})'"
                    r"|(?P<bare>[^\s;,&\"'<>]{1,4096}))")
_PLACEHOLDER = re.compile(r"[*x.•]+|<[^>]*>|\$\{[^}]*\}|\{\{.*\}\}|%s|\[REDACTED.*|null|none|nil"
                          r"|true|false|undefined|redacted|hidden|masked|\*+.*", re.IGNORECASE)
# What follows "password:" in prose rather than a password
_PROSE = frozenset({"the", "a", "an", "is", "was", "to", "and", "or", "for", "of", "in", "on",
                    "it", "this", "that", "not", "be", "we", "you", "your", "my", "our",
                    "reset", "required", "incorrect", "invalid", "wrong", "expired", "changed",
                    "must", "should", "please", "will", "has", "have", "can", "cannot"})


def kind_of_key(name: str) -> str | None:
    """The kind of secret a key of that name holds ("password" or "api_key"), or None."""
    if _NAME_ROOT.search(name) is None:  # most keys: one cheap search
        return None
    match = _SECRET_NAME.search(_SEPARATOR.sub("_", _CAMEL.sub("_", name)).lower())
    if match is None:
        return None
    return "password" if match.group("password") else "api_key"


def secret_value(kind: str, value: str) -> bool:
    """Whether a value under a secret's name is one: not empty, not a placeholder, and for a
    key or token not a plain word either."""
    value = value.strip()
    if len(value) < 3 or _PLACEHOLDER.fullmatch(value) or value.lower() in _PROSE:
        return False
    return kind == "password" or (len(value) >= 8 and looks_random(value))


def settings(text: Text) -> list[Finding]:
    """`password=…`, `api_key: "…"`, `Pwd=…;` in connection strings, `--password=…`,
    `X-API-Key: …`, `Cookie: sessionid=…`."""
    s = text.text
    found: list[Finding] = []
    separators = positions(s, "=") if "=" in s else []
    if ":" in s:
        separators = sorted(separators + positions(s, ":"))
    for sep in separators:
        name = _NAME_REVERSED.match(s[max(0, sep - 66):sep][::-1])
        kind = kind_of_key(name.group("name")[::-1]) if name else None
        if kind is not None:
            found += _setting_value(s, sep + 1, kind)
    return found


def _setting_value(s: str, at: int, kind: str) -> list[Finding]:
    match = _VALUE.match(s, at)
    if match is None:
        return []
    group = next(g for g in ("dq", "sq", "bare") if match.group(g) is not None)
    if not secret_value(kind, match.group(group)):
        return []
    return [Finding(match.start(group), match.end(group), kind, match.group(group))]


# "my password is …", "Das Passwort für die Datenbank ist …", "パスワードは…": a password
# word, a few words, a linking word, then the value, which must look like a password (a digit,
# both cases or a symbol, or words joined by dots: staple.monkey.sunset.ocean).
_PASSWORD_WORDS = frozenset({
    b"password", b"passwords", b"passwort", b"passwd", b"passcode", b"passphrase", b"passe",
    b"pwd", b"pw", b"mdp", b"kennwort", b"contrase", b"clave", b"senha", b"wachtwoord",
    b"passord", b"passordet", b"adgangskode", b"adgangskoden", b"salasana", b"salasanan",
    b"parola"})  # contrase: the ASCII word of "contraseña"
_NON_ASCII = ("lösenord", "hasło", "hasła", "пароль", "пароля", "şifre")
_UNSPACED = ("パスワード", "密码", "비밀번호")  # scripts that write no space between words
_WORD = re.compile(r"[^\W\d_]+")
# a colon or '=' right after the word ("Passwort: …"), or a verb a few words on
_RIGHT_AFTER = re.compile(r"\s?[:=\uff1a]\s*")  # \uff1a: the full-width colon
_LINK = re.compile(r"\s(?:is|are|was|ist|lautet|war|est|c'est|était|es|era|é|è|är|er|on|jest|to"
                   r"|это|-)\s+|は|是|为|는|은", re.IGNORECASE)
_VALUE_TOKEN = re.compile(r"[^\s\"'<>]{3,128}")
_SENTENCE_END = re.compile(r"[\n.!?:=]")
LINK_REACH = 48  # how far after the word for "password" its verb may stand
_USER_OPTION = re.compile(r"\s*(?:-u|--user)\s+[\"']?[^\s:\"']+:(?P<value>[^\s\"'@]+)")
_PASSPHRASE = re.compile(r"[a-z]+(?:[.\-_][a-z]+){2,}")
_SYMBOL = re.compile(r"[!@#$%^&*?~+=]")
_CALL = re.compile(r"\(\s*([\"'])[^\"'\n]{1,256}\1\s*,\s*([\"'])(?P<value>[^\"'\n]{3,256})\2")


def spoken_passwords(text: Text) -> list[Finding]:
    s, lower = text.text, text.lower
    found: list[Finding] = []
    for at in _password_words(text):
        value = _spoken_value(s, at)
        if value is not None and _password_like(value.group().rstrip(",;.)")):
            word = value.group().rstrip(",;.)")
            found.append(Finding(value.start(), value.start() + len(word), "password", word))
    # curl -u admin:S3cr3t! (the user stays)
    for at in positions(s, " -u ") + positions(s, "--user ") if {b"u", b"user"} & text.words \
            else []:
        match = _USER_OPTION.match(s, at)
        if match is not None and secret_value("password", match.group("value")):
            found.append(Finding(match.start("value"), match.end("value"), "password",
                                 match.group("value")))
    # smtp.login("user@example.com", "S3cr3t!") and the like
    for call in ("login(", "authenticate("):
        for at in positions(lower, call) if call[:-1].encode() in text.words else []:
            match = _CALL.match(s, at + len(call) - 1)
            if match is not None and secret_value("password", match.group("value")):
                found.append(Finding(match.start("value"), match.end("value"), "password",
                                     match.group("value")))
    return found


def _password_words(text: Text) -> list[int]:
    """Where each word for "password" ends."""
    lower, words = text.lower, text.words
    ascii_only = text.text.isascii()
    ends = []
    for word in [w.decode() for w in _PASSWORD_WORDS & words] + (
            [] if ascii_only else [w for w in _NON_ASCII if w in lower]):
        for at in positions(lower, word):
            match = _WORD.match(lower, at)
            if ((not at or not lower[at - 1].isalpha()) and match and match.group() == word) or (
                    match and match.group().startswith("contrase")):
                ends.append(match.end())
    for unspaced in () if ascii_only else _UNSPACED:
        ends += [at + len(unspaced) for at in positions(lower, unspaced)]
    return sorted(ends)  # in text order, whatever order the set of words is in


def _spoken_value(s: str, at: int) -> re.Match[str] | None:
    """The word after "password" and its colon, or after its verb within the sentence."""
    link = _RIGHT_AFTER.match(s, at)
    if link is None:
        stop = _SENTENCE_END.search(s, at, at + LINK_REACH)
        link = _LINK.search(s, at, stop.start() if stop else at + LINK_REACH)
    return _VALUE_TOKEN.match(s, link.end()) if link else None


def _password_like(value: str) -> bool:
    return secret_value("password", value) and not value.isdigit() and "://" not in value and (
        mixed(value) or _SYMBOL.search(value) is not None or bool(_PASSPHRASE.fullmatch(value)))
