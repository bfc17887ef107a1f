//! Passwords and secrets named as such: in URLs (`scheme://user:pass@host`), in settings and
//! connection strings (`password=…`, `api_key: "…"`, `Pwd=…;`, `X-API-Key: …`), on command
//! lines (`curl -u user:pass`), in login calls, and in prose ("my password is …") (ported from
//! agent/sidecar/redaction/passwords.py; held to it by tests/test_native_redaction.py).

use std::sync::LazyLock;

use regex::Regex;

use super::Detect;
use super::keys::{looks_random, mixed};
use super::text::{Checks, Finding, Text, positions, whole_word};

pub const DETECTORS: &[(&str, Detect)] = &[
    ("url_passwords", url_passwords),
    ("settings", settings),
    ("spoken_passwords", spoken_passwords),
];

/// Python's `\s` on plain ASCII text.
fn space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The end of the run from `at` of bytes that `keep` takes, at most `max` long and not past
/// `end`.
fn run(s: &[u8], at: usize, end: usize, max: usize, keep: impl Fn(u8) -> bool) -> usize {
    let mut i = at;
    while i < end && i - at < max && keep(s[i]) {
        i += 1;
    }
    i
}

/// postgres://user:secret@db:5432/app: the password, not the user or the host.
fn url_passwords(text: &Text, _: &dyn Checks) -> Vec<Finding> {
    let s = text.bytes();
    let mut found = Vec::new();
    if !s.contains(&b':') {
        return found;
    }
    let scheme_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-');
    for at in positions(text.text, "://", 0) {
        // the scheme: the leftmost letter from which scheme bytes reach `at`, 24 back at most
        let mut from = at;
        while from > at.saturating_sub(24) && scheme_byte(s[from - 1]) {
            from -= 1;
        }
        if !s[from..at].iter().any(u8::is_ascii_alphabetic) {
            continue;
        }
        let user_end =
            run(s, at + 3, s.len(), usize::MAX, |b| !space(b) && !b":/@?#\"'".contains(&b));
        if s.get(user_end) != Some(&b':') {
            continue;
        }
        let start = user_end + 1;
        let end = run(s, start, s.len(), usize::MAX, |b| !space(b) && !b"@/?#\"'".contains(&b));
        if end > start && s.get(end) == Some(&b'@') {
            found.push(Finding::new(start, end, "password", &text.text[start..end]));
        }
    }
    found
}

/// What `_SECRET_NAME` takes after its start: the password group's names, then the key
/// group's (only which group matches first matters).
const PASSWORD_NAMES: &[&str] = &["password", "passwd", "passphrase", "passcode", "pass", "pwd"];
const KEY_NAMES: &[&str] = &[
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "access_key",
    "secret_access_key",
    "secret_key",
    "private_key_id",
    "private_key",
    "access_token",
    "auth_token",
    "refresh_token",
    "id_token",
    "session_token",
    "bearer_token",
    "api_token",
    "security_token",
    "credentials",
    "credential",
    "account_key",
    "accountkey",
    "shared_access_key",
    "shared_access_signature",
    "shared_accesskey",
    "shared_accesssignature",
    "sharedaccess_key",
    "sharedaccess_signature",
    "sharedaccesskey",
    "sharedaccesssignature",
    "sig",
    "session_id",
    "sessionid",
    "session",
    "sid",
    "phpsessid",
    "jsessionid",
];
const NAME_ROOTS: &[&str] =
    &["pass", "pwd", "secret", "key", "token", "credential", "sig", "sid", "session"];

/// Whether a name of `names` stands at `at` of the snake_case name `n`, ending it or a part.
fn name_at(n: &[u8], at: usize, names: &[&str]) -> bool {
    names.iter().any(|w| {
        let end = at + w.len();
        // Python's `$` also stands before a last line break
        n[at..].starts_with(w.as_bytes())
            && (end == n.len() || n[end] == b'_' || (end + 1 == n.len() && n[end] == b'\n'))
    })
}

/// Whether `c` is the ASCII letter `r` as Python's `re.IGNORECASE` reads it: either case,
/// and the four non-ASCII letters it folds to one (İ, ı, ſ, the Kelvin sign).
fn folds_to(c: char, r: u8) -> bool {
    c.to_ascii_lowercase() == r as char
        || matches!((r, c), (b'i', '\u{130}' | '\u{131}') | (b's', '\u{17f}') | (b'k', '\u{212a}'))
}

/// The kind of secret a key of that name holds ("password" or "api_key"), or None. Names are
/// read in snake_case (apiKey, X-API-Key and api_key alike); a bare `token` is not one: model
/// output calls its word pieces tokens. Exact on any text (OTLP keys are not only ASCII).
pub fn kind_of_key(name: &str) -> Option<&'static str> {
    let has_root = name.char_indices().any(|(i, _)| {
        NAME_ROOTS.iter().any(|root| {
            let mut chars = name[i..].chars();
            root.bytes().all(|r| chars.next().is_some_and(|c| folds_to(c, r)))
        })
    });
    if !has_root {
        return None; // most keys: one cheap search
    }
    let mut snake = String::with_capacity(name.len() + 8);
    let mut before = None;
    for c in name.chars() {
        if c.is_ascii_uppercase()
            && before.is_some_and(|b: char| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            snake.push('_'); // camelCase
        }
        snake.push(if c == '-' || c == '.' { '_' } else { c });
        before = Some(c);
    }
    // Python's lower(): only İ and the Kelvin sign lower to ASCII letters, as here
    let n = snake.to_lowercase();
    let n = n.as_bytes();
    // _SECRET_NAME.search: at each start `^`, then `_`, then `(?=password|passwd|passphrase)`
    for at in 0..=n.len() {
        let mut starts = [None; 3];
        if at == 0 {
            starts[0] = Some(0);
        }
        if n.get(at) == Some(&b'_') {
            starts[1] = Some(at + 1);
        }
        if ["password", "passwd", "passphrase"].iter().any(|w| n[at..].starts_with(w.as_bytes())) {
            starts[2] = Some(at);
        }
        for body in starts.into_iter().flatten() {
            if name_at(n, body, PASSWORD_NAMES) {
                return Some("password");
            }
            if name_at(n, body, KEY_NAMES) {
                return Some("api_key");
            }
        }
    }
    None
}

// `•` of the Python class is left out: it never stands in plain ASCII text
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\A(?:[*x.]+|<[^>]*>|\$\{[^}]*\}|\{\{.*\}\}|%s|\[REDACTED.*|null|none|nil|true|false|undefined|redacted|hidden|masked|\*+.*)\z",
    )
    .unwrap()
});

/// What follows "password:" in prose rather than a password.
const PROSE: &[&str] = &[
    "the",
    "a",
    "an",
    "is",
    "was",
    "to",
    "and",
    "or",
    "for",
    "of",
    "in",
    "on",
    "it",
    "this",
    "that",
    "not",
    "be",
    "we",
    "you",
    "your",
    "my",
    "our",
    "reset",
    "required",
    "incorrect",
    "invalid",
    "wrong",
    "expired",
    "changed",
    "must",
    "should",
    "please",
    "will",
    "has",
    "have",
    "can",
    "cannot",
];

/// Whether a value under a secret's name is one: not empty, not a placeholder, and for a key
/// or token not a plain word either. Exact on plain ASCII text: its callers leave anything
/// else to Python whatever it answers.
pub fn secret_value(kind: &str, value: &str) -> bool {
    let value = value.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if value.len() < 3
        || PLACEHOLDER.is_match(value)
        || PROSE.contains(&value.to_ascii_lowercase().as_str())
    {
        return false;
    }
    kind == "password" || (value.len() >= 8 && looks_random(value))
}

/// `password=…`, `api_key: "…"`, `Pwd=…;` in connection strings, `--password=…`,
/// `X-API-Key: …`, `Cookie: sessionid=…`.
fn settings(text: &Text, _: &dyn Checks) -> Vec<Finding> {
    let s = text.bytes();
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    let mut found = Vec::new();
    for sep in (0..s.len()).filter(|&i| s[i] == b'=' || s[i] == b':') {
        // the name before the separator, as `[ \t]*["']?([\w.-]{1,64})` reads it reversed
        // in the 66 characters before it
        let low = sep.saturating_sub(66);
        let mut end = sep;
        while end > low && matches!(s[end - 1], b' ' | b'\t') {
            end -= 1;
        }
        if end > low && matches!(s[end - 1], b'"' | b'\'') {
            end -= 1;
        }
        let mut start = end;
        while start > low && end - start < 64 && name_byte(s[start - 1]) {
            start -= 1;
        }
        if start == end {
            continue;
        }
        if let Some(kind) = kind_of_key(&text.text[start..end]) {
            found.extend(setting_value(text.text, sep + 1, kind));
        }
    }
    found
}

/// The value after a secret's name and its separator: quoted, or bare up to a delimiter.
fn setting_value(text: &str, at: usize, kind: &str) -> Option<Finding> {
    let s = text.as_bytes();
    let at = run(s, at, s.len(), usize::MAX, |b| matches!(b, b' ' | b'\t'));
    let (start, end) = match s.get(at) {
        Some(&quote @ (b'"' | b'\'')) => {
            let end = run(s, at + 1, s.len(), 4096, |b| !matches!(b, b'\r' | b'\n') && b != quote);
            if end == at + 1 || s.get(end) != Some(&quote) {
                return None;
            }
            (at + 1, end)
        }
        _ => {
            let end = run(s, at, s.len(), 4096, |b| !space(b) && !b";,&\"'<>".contains(&b));
            if end == at {
                return None;
            }
            (at, end)
        }
    };
    let value = &text[start..end];
    secret_value(kind, value).then(|| Finding::new(start, end, kind, value))
}

/// Words for "password" (ASCII ones: the others never stand in plain ASCII text).
const PASSWORD_WORDS: &[&str] = &[
    "password",
    "passwords",
    "passwort",
    "passwd",
    "passcode",
    "passphrase",
    "passe",
    "pwd",
    "pw",
    "mdp",
    "kennwort",
    "clave",
    "senha",
    "wachtwoord",
    "passord",
    "passordet",
    "adgangskode",
    "adgangskoden",
    "salasana",
    "salasanan",
    "parola",
];
/// The ASCII word of "contraseña", which counts in longer words too (contrasena).
const CONTRASE: &str = "contrase";
/// The ASCII verbs of `_LINK` ("my password is …", "Das Passwort … lautet …").
const LINKS: &[&str] = &[
    "is", "are", "was", "ist", "lautet", "war", "est", "c'est", "es", "era", "er", "on", "jest",
    "to", "-",
];
/// How far after the word for "password" its verb may stand.
const LINK_REACH: usize = 48;

/// "my password is …", "Passwort: …", `curl -u user:pass`, `login("user", "pass")`.
fn spoken_passwords(text: &Text, _: &dyn Checks) -> Vec<Finding> {
    let (s, lower) = (text.text, text.lower());
    let b = s.as_bytes();
    let mut found = Vec::new();
    for at in password_words(text) {
        if let Some((start, end)) = spoken_value(b, at) {
            let word = s[start..end].trim_end_matches([',', ';', '.', ')']);
            if password_like(word) {
                found.push(Finding::new(start, start + word.len(), "password", word));
            }
        }
    }
    // curl -u admin:S3cr3t! (the user stays)
    // (Python asks for the word `u` or `user` first: each option is that word itself)
    for at in [positions(s, " -u ", 0), positions(s, "--user ", 0)].concat() {
        if let Some((start, end)) = user_option(b, at)
            && secret_value("password", &s[start..end])
        {
            found.push(Finding::new(start, end, "password", &s[start..end]));
        }
    }
    // smtp.login("user@example.com", "S3cr3t!") and the like
    for call in ["login(", "authenticate("] {
        let calls = positions(lower, call, 0);
        if calls.is_empty() || !text.has_word(&call[..call.len() - 1]) {
            continue;
        }
        for at in calls {
            if let Some((start, end)) = call_password(b, at + call.len() - 1)
                && secret_value("password", &s[start..end])
            {
                found.push(Finding::new(start, end, "password", &s[start..end]));
            }
        }
    }
    found
}

/// Where each word for "password" ends, in text order (Python's list goes by a set's order,
/// which changes with the hash seed: the findings are the same, their order may not be).
fn password_words(text: &Text) -> Vec<usize> {
    // One pass over the runs of letters: a word for "password" counts where it is a whole
    // run, if it is also a whole word (letters and digits) somewhere, as Python's
    // `word in text.words` asks; contrase counts wherever it stands.
    let lower = text.lower().as_bytes();
    let mut is_word = [false; PASSWORD_WORDS.len()];
    let mut contrase = false;
    let mut found = Vec::new();
    let mut i = 0;
    while i < lower.len() {
        if !lower[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let start = i;
        i = run(lower, i, lower.len(), usize::MAX, |b| b.is_ascii_alphabetic());
        let letters = &lower[start..i];
        if letters == CONTRASE.as_bytes() {
            contrase |= whole_word(lower, start, i - start);
        } else if let Some(k) = PASSWORD_WORDS.iter().position(|w| w.as_bytes() == letters) {
            is_word[k] |= whole_word(lower, start, i - start);
            found.push((k, i));
        }
    }
    let mut ends: Vec<usize> =
        found.into_iter().filter(|&(k, _)| is_word[k]).map(|(_, end)| end).collect();
    if contrase {
        for at in positions(text.lower(), CONTRASE, 0) {
            ends.push(run(lower, at, lower.len(), usize::MAX, |b| b.is_ascii_alphabetic()));
        }
    }
    ends.sort_unstable();
    ends
}

/// The word after "password" and its colon, or after its verb within the sentence.
fn spoken_value(s: &[u8], at: usize) -> Option<(usize, usize)> {
    let link = right_after(s, at).or_else(|| {
        let reach = (at + LINK_REACH).min(s.len());
        let stop =
            s[at..reach].iter().position(|b| b"\n.!?:=".contains(b)).map_or(reach, |i| at + i);
        link_verb(s, at, stop)
    })?;
    let end = run(s, link, s.len(), 128, |b| !space(b) && !b"\"'<>".contains(&b));
    (end - link >= 3).then_some((link, end))
}

/// The end of `\s?[:=]\s*` at `at`.
fn right_after(s: &[u8], at: usize) -> Option<usize> {
    let at = if s.get(at).is_some_and(|&b| space(b)) { at + 1 } else { at };
    matches!(s.get(at), Some(b':' | b'=')).then(|| run(s, at + 1, s.len(), usize::MAX, space))
}

/// The end of the first ` is `, ` ist `, ` - `… (any case) in `s[at..stop]`.
fn link_verb(s: &[u8], at: usize, stop: usize) -> Option<usize> {
    (at..stop).filter(|&p| space(s[p])).find_map(|p| {
        LINKS.iter().find_map(|verb| {
            let end = p + 1 + verb.len();
            (end < stop && s[p + 1..end].eq_ignore_ascii_case(verb.as_bytes()) && space(s[end]))
                .then(|| run(s, end, stop, usize::MAX, space))
        })
    })
}

/// The password of `\s*(?:-u|--user)\s+["']?user:password` at `at`.
fn user_option(s: &[u8], at: usize) -> Option<(usize, usize)> {
    let at = run(s, at, s.len(), usize::MAX, space);
    let option = [&b"-u"[..], b"--user"].into_iter().find(|o| s[at..].starts_with(o))?;
    let gap = at + option.len();
    let mut user = run(s, gap, s.len(), usize::MAX, space);
    if user == gap {
        return None;
    }
    if matches!(s.get(user), Some(b'"' | b'\'')) {
        user += 1;
    }
    let colon = run(s, user, s.len(), usize::MAX, |b| !space(b) && !b":\"'".contains(&b));
    if colon == user || s.get(colon) != Some(&b':') {
        return None;
    }
    let end = run(s, colon + 1, s.len(), usize::MAX, |b| !space(b) && !b"\"'@".contains(&b));
    (end > colon + 1).then_some((colon + 1, end))
}

/// The second argument of `("user", "password"` at `at` (the parenthesis), quoted alike.
fn call_password(s: &[u8], at: usize) -> Option<(usize, usize)> {
    let quoted = |at: usize, min: usize| -> Option<(usize, usize)> {
        let quote = *s.get(at).filter(|b| matches!(b, b'"' | b'\''))?;
        let end = run(s, at + 1, s.len(), 256, |b| !matches!(b, b'"' | b'\'' | b'\n'));
        (end - (at + 1) >= min && s.get(end) == Some(&quote)).then_some((at + 1, end))
    };
    let (_, user_end) = quoted(run(s, at + 1, s.len(), usize::MAX, space), 1)?;
    let comma = run(s, user_end + 1, s.len(), usize::MAX, space);
    if s.get(comma) != Some(&b',') {
        return None;
    }
    quoted(run(s, comma + 1, s.len(), usize::MAX, space), 3)
}

/// Whether a value after a word for "password" looks like one: a digit, both cases or a
/// symbol, or words joined by dots (staple.monkey.sunset.ocean); not a number or a URL.
fn password_like(value: &str) -> bool {
    secret_value("password", value)
        && !value.bytes().all(|b| b.is_ascii_digit())
        && !value.contains("://")
        && (mixed(value)
            || value.bytes().any(|b| b"!@#$%^&*?~+=".contains(&b))
            || passphrase(value))
}

/// `[a-z]+(?:[.\-_][a-z]+){2,}`, the whole value.
fn passphrase(value: &str) -> bool {
    let mut parts = 0;
    for part in value.split(['.', '-', '_']) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_lowercase()) {
            return false;
        }
        parts += 1;
    }
    parts >= 3
}
