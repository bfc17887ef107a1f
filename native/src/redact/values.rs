//! Redaction of one string value as agent/sidecar/redaction/values.py does it: a JSON object
//! or array on its decoded strings (keys too; a value under a key that names a secret is one
//! whole; a string holding JSON one level down), anything else as text. Done here when every
//! finding is masked (`[REDACTED:<type>]`, the default with no policies); otherwise, and for
//! what is not plain ASCII once decoded or JSON that this parser and Python's may not read
//! alike, the answer is "Python's to do".

use std::collections::BTreeMap;

use super::passwords::{kind_of_key, secret_value};
use super::scanner::Scanner;
use super::text::{Checks, Finding, plain_ascii};
use crate::pyjson::ascii_string;

/// Findings per type.
pub type Counts = BTreeMap<String, usize>;

pub enum Verdict {
    /// Nothing to redact: the value stays as it is.
    Clean,
    /// The value with every finding masked, and the count per type.
    Masked(String, Counts),
    /// Something only the Python walk decides or does.
    Python,
}

/// What redaction does to `value`; `key`: the JSON key it is the value of (context words),
/// `mask`: whether findings are to be masked here (no policy says otherwise).
pub fn redact(
    scanner: &Scanner,
    checks: &dyn Checks,
    value: &str,
    key: &str,
    mask: bool,
) -> Verdict {
    if !plain_ascii(value) {
        return Verdict::Python;
    }
    match is_json(value) {
        None => Verdict::Python,
        Some(true) => redact_json(scanner, checks, value, mask),
        Some(false) => match scanner.settled(value, key, checks) {
            None => Verdict::Python,
            Some(found) if found.is_empty() => Verdict::Clean,
            Some(_) if !mask => Verdict::Python,
            Some(found) => masked(value, &found),
        },
    }
}

/// values.py `_plain` with every finding masked.
fn masked(value: &str, found: &[Finding]) -> Verdict {
    let mut text = String::with_capacity(value.len());
    let mut counts = Counts::new();
    let mut last = 0;
    for f in found {
        text.push_str(&value[last..f.start]);
        text.push_str("[REDACTED:");
        text.push_str(&f.kind);
        text.push(']');
        last = f.end;
        *counts.entry(f.kind.clone()).or_default() += 1;
    }
    text.push_str(&value[last..]);
    Verdict::Masked(text, counts)
}

/// An object or an array that parses (values.py `_is_json`); None where Python's parser may
/// differ (NaN, Infinity, nesting past this parser's limit: it refuses what Python reads).
fn is_json(value: &str) -> Option<bool> {
    let trimmed = value.trim_matches([' ', '\t', '\n', '\r']);
    if !(trimmed.starts_with(['{', '[']) && trimmed.ends_with(['}', ']'])) {
        return Some(false);
    }
    match serde_json::from_str::<serde::de::IgnoredAny>(value) {
        Ok(_) => Some(true),
        Err(_) => None,
    }
}

fn skip_space(s: &[u8], mut at: usize) -> usize {
    while at < s.len() && matches!(s[at], b' ' | b'\t' | b'\n' | b'\r') {
        at += 1;
    }
    at
}

/// The end of the string token that starts at `at` (a '"'), past its closing quote.
fn token_end(s: &[u8], mut at: usize) -> usize {
    at += 1;
    while at < s.len() {
        match s[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    s.len()
}

/// values.py `_json`: string token by string token; what is unchanged keeps its bytes.
fn redact_json(scanner: &Scanner, checks: &dyn Checks, value: &str, mask: bool) -> Verdict {
    let s = value.as_bytes();
    let (mut key, mut key_end, mut secret_kind): (String, Option<usize>, Option<&str>) =
        (String::new(), None, None);
    let (mut out, mut counts, mut last) = (String::new(), Counts::new(), 0);
    let mut new_keys: BTreeMap<String, usize> = BTreeMap::new();
    let mut at = 0;
    while let Some(offset) = s[at..].iter().position(|&b| b == b'"') {
        let start = at + offset;
        let end = token_end(s, start);
        at = end;
        let raw = &value[start + 1..end - 1];
        let text = if raw.contains('\\') {
            match serde_json::from_str::<String>(&value[start..end]) {
                Ok(text) => text,
                Err(_) => return Verdict::Python, // a lone surrogate, say
            }
        } else {
            raw.to_string()
        };
        let after = skip_space(s, end);
        let is_key = after < s.len() && s[after] == b':';
        let is_value = !is_key
            && key_end.is_some_and(|k| {
                let colon = skip_space(s, k);
                colon < start && s[colon] == b':' && skip_space(s, colon + 1) == start
            });
        let verdict = match secret_kind {
            Some(kind) if is_value && secret_value(kind, &text) => {
                if !plain_ascii(&text) || !mask {
                    return Verdict::Python;
                }
                masked(&text, &[Finding::new(0, text.len(), kind, text.as_str())])
            }
            _ => redact(scanner, checks, &text, if is_value { &key } else { "" }, mask),
        };
        if is_key {
            secret_kind = kind_of_key(&text);
            key = text;
            key_end = Some(end);
        }
        let (mut new, found) = match verdict {
            Verdict::Clean => continue,
            Verdict::Python => return Verdict::Python,
            Verdict::Masked(new, found) => (new, found),
        };
        if is_key {
            // two keys of one object must not become one
            let seen = new_keys.entry(new.clone()).or_default();
            *seen += 1;
            if *seen > 1 {
                new = format!("{new} #{seen}");
            }
        }
        out.push_str(&value[last..start]);
        ascii_string(&new, &mut out); // json.dumps, as values.py `_encode` writes it
        last = end;
        for (kind, n) in found {
            *counts.entry(kind).or_default() += n;
        }
    }
    if counts.is_empty() {
        return Verdict::Clean;
    }
    out.push_str(&value[last..]);
    Verdict::Masked(out, counts)
}
