//! Phone numbers (agent/sidecar/redaction/phones.py): the candidates, each a run of digits
//! and separators that stands alone; whether one is a number of a real plan is
//! libphonenumber's to say (`Checks::phone`).

use super::Detect;
use super::text::{Checks, Finding, Text, mentions, word_byte};

const MIN_DIGITS: usize = 7;
const MAX_DIGITS: usize = 15; // E.164

pub const DETECTORS: &[(&str, Detect)] = &[("phones", phones)];

fn phones(text: &Text, checks: &dyn Checks) -> Vec<Finding> {
    let s = text.bytes();
    let mut found = Vec::new();
    for (mut start, end, digits) in text.clusters(MIN_DIGITS) {
        if digits > MAX_DIGITS + 2 {
            continue; // '00' and a trunk '(0)' may come on top
        }
        if start > 0 && s[start - 1] == b'+' {
            start -= 1;
        }
        if start > 0 && s[start - 1] == b'(' && s[start..end].contains(&b')') {
            start -= 1;
        }
        if (start > 0 && (word_byte(s[start - 1]) || b"-./\\".contains(&s[start - 1])))
            || (end < s.len() && word_byte(s[end]))
        {
            continue; // part of a longer token: INV-5551234567, a decimal, a path
        }
        let (candidate, before) = (&text.text[start..end], text.before(start, 32));
        if could_be(candidate, &before)
            && let Some(e164) = checks.phone(candidate, &before)
        {
            found.push(Finding::new(start, end, "phone", e164));
        }
    }
    found
}

// ASCII phone words of phones.py (`_PHONE_WORDS`, `_NOT_PHONE_WORDS`): the others never stand
// in plain ASCII text.
const PHONE_WORDS: &[&str] = &[
    "phone",
    "tel",
    "call",
    "mobile",
    "cell",
    "sms",
    "text me",
    "whatsapp",
    "fax",
    "contact",
    "reach",
    "dial",
    "ring",
    "number is",
    "telefon",
    "portable",
    "handy",
    "movil",
    "celular",
    "numero",
    "telefone",
    "cellulare",
    "marca",
    "llama",
    "appelez",
    "anrufen",
    "ligue",
    "chiama",
];
const NOT_PHONE_WORDS: &[&str] = &[
    "order", "invoice", "account", "acct", "ref", "tracking", "ticket", "case", "serial", "sku",
    "isbn", "version", "build", "id ", "id:", "id#", "#", "no.", "nr.", "amount", "total", "price",
    "p/n", "part", "$", "=", "zip", "postal", "postcode", "cep", "plz", "firmware", "geo:",
    "incident", "issue", "bug", "request",
];

/// False where phones.py's `Phones.e164` says no before asking libphonenumber (a date, a
/// digit alone in a group, an IPv4 address, bare digits or an order number without a phone
/// word): most candidates in prose end here, without a call into Python.
fn could_be(candidate: &str, before: &str) -> bool {
    let c = candidate.as_bytes();
    if c[0] == b'+' || (c.len() > 2 && c.starts_with(b"00") && (b'1'..=b'9').contains(&c[2])) {
        return true; // international: Python's to judge
    }
    let groups: Vec<&[u8]> = c.split(|b| !b.is_ascii_digit()).filter(|g| !g.is_empty()).collect();
    if date(c)
        || groups.iter().skip(1).any(|g| g.len() == 1)
        || candidate.contains(" - ")
        || (groups.len() == 2 && c.contains(&b'.') && c[0] != b'0')
        || ipv4(c)
    {
        return false;
    }
    let window = &before[before.len().saturating_sub(16)..];
    mentions(before, PHONE_WORDS)
        || !(c.iter().all(u8::is_ascii_digit) || mentions(window, NOT_PHONE_WORDS))
}

/// `\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}`, the whole candidate.
fn date(c: &[u8]) -> bool {
    let parts: Vec<&[u8]> = c.split(|b| b"-/.".contains(b)).collect();
    parts.len() == 3
        && parts.iter().all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
        && matches!(
            (parts[0].len(), parts[1].len(), parts[2].len()),
            (4, 1..=2, 1..=2) | (1..=2, 1..=2, 2..=4)
        )
}

/// What Python's `ipaddress.IPv4Address` takes: four decimal octets up to 255, no leading
/// zeros.
fn ipv4(c: &[u8]) -> bool {
    let octets: Vec<&[u8]> = c.split(|&b| b == b'.').collect();
    octets.len() == 4
        && octets.iter().all(|o| {
            (1..=3).contains(&o.len())
                && o.iter().all(u8::is_ascii_digit)
                && (o.len() == 1 || o[0] != b'0')
                && std::str::from_utf8(o).is_ok_and(|t| t.parse::<u16>().is_ok_and(|v| v <= 255))
        })
}
