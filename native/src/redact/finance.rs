//! Payment card numbers (Luhn, issuer prefix, grouping), IBANs and domestic bank details (US
//! routing and account numbers, UK sort codes) (ported from agent/sidecar/redaction/finance.py;
//! held to it by tests/test_native_redaction.py). python-stdnum's IBAN and routing number
//! checks stay in Python (`Checks`).

use super::Detect;
use super::text::{Checks, Finding, Text, mentions, word_byte};

pub const DETECTORS: &[(&str, Detect)] =
    &[("cards", cards), ("ibans", ibans), ("bank_accounts", bank_accounts)];

const CARD_MIN: usize = 13;
const CARD_STOP: usize = 20; // one past the longest card number
const CARD_WORDS: &[&str] = &[
    "card",
    "carte",
    "tarjeta",
    "karte",
    "carta",
    "visa",
    "mastercard",
    "amex",
    "cc",
    "kaart",
    "karta",
];
const NOT_CARD_WORDS: &[&str] = &[
    "isbn",
    "imei",
    "tracking",
    "timestamp",
    "epoch",
    "nonce",
    "ts=",
    "unix",
    "order",
    "pedido",
    "commande",
    "bestell",
    "invoice",
    "factura",
    "rechnung",
    "ref",
];
/// A result of arithmetic ("x = 4532015112830366") is one bare run of digits; a number written
/// in groups after '=' ("card = 4111-1111-1111-1111") is still a card.
const MATH: &str = "= ";
const CARD_GAPS: &[&[u8]] = &[b" ", b"-", b".", b" - "];

fn cards(text: &Text, _: &dyn Checks) -> Vec<Finding> {
    let s = text.bytes();
    let mut found = Vec::new();
    for (start, end, _) in text.clusters(CARD_MIN) {
        let groups = digit_runs(s, start, end);
        let mut i = 0;
        while i < groups.len() {
            let Some((card, last)) = card_from(text.text, &groups, i) else {
                i += 1;
                continue;
            };
            let before = text.before(card.start, 24);
            let bare = card.end - card.start == card.value.len();
            if mentions(&before, CARD_WORDS)
                || !(mentions(&before, NOT_CARD_WORDS) || (bare && before.contains(MATH)))
            {
                found.push(card);
            }
            i = last + 1;
        }
    }
    found
}

/// (start, end) of each run of digits in `s[start..end]`.
fn digit_runs(s: &[u8], start: usize, end: usize) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = start;
    while i < end {
        if s[i].is_ascii_digit() {
            let a = i;
            while i < end && s[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((a, i));
        } else {
            i += 1;
        }
    }
    runs
}

/// The longest card number made of whole groups from `groups[first]` on (and the index of its
/// last group): bare, or in groups of at least 4 digits (the last excepted) apart by a space,
/// a dash or a dot.
fn card_from(text: &str, groups: &[(usize, usize)], first: usize) -> Option<(Finding, usize)> {
    let s = text.as_bytes();
    let start = groups[first].0;
    if start > 0 && (word_byte(s[start - 1]) || matches!(s[start - 1], b'.' | b'-')) {
        return None;
    }
    let mut digits = String::new();
    let mut best = None;
    for (k, &(a, b)) in groups.iter().enumerate().skip(first) {
        if k > first {
            let (pa, pb) = groups[k - 1];
            if !CARD_GAPS.contains(&&s[pb..a]) || pb - pa < 4 {
                break;
            }
        }
        digits.push_str(&text[a..b]);
        if digits.len() >= CARD_STOP {
            break;
        }
        let followed = b < s.len()
            && (word_byte(s[b])
                || s[b] == b'-'
                || (matches!(s[b], b'.' | b',') && s.get(b + 1).is_some_and(u8::is_ascii_digit)));
        if digits.len() >= CARD_MIN && !followed && issuer(digits.as_bytes()) && luhn(&digits) {
            best = Some((Finding::new(start, b, "card", digits.clone()), k));
        }
    }
    best
}

/// Issuer prefixes (Visa, Mastercard incl. 2-series, Amex, Diners, JCB, Discover, UnionPay,
/// Maestro, Mir, RuPay): timestamps (1…), ISBNs (978…, 979…) and most ids start elsewhere.
fn issuer(digits: &[u8]) -> bool {
    matches!(
        digits,
        [b'4' | b'6', ..]
            | [b'5', b'0'..=b'8', ..]
            | [b'2', b'2'..=b'6', b'0'..=b'9', ..]
            | [b'2', b'7', b'0'..=b'2', ..]
            | [b'3', b'0' | b'4'..=b'9', ..]
            | [b'8', b'1' | b'2', ..]
    )
}

/// stdnum.luhn.is_valid on a string of digits.
pub(super) fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 { d * 2 / 10 + d * 2 % 10 } else { d }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// As written, or lower-case.
const IBAN_HEADS: [&str; 2] = ["AA00", "aa00"];
const IBAN_MIN: usize = 11; // characters after the check digits
const IBAN_MAX: usize = 30;

fn ibans(text: &Text, checks: &dyn Checks) -> Vec<Finding> {
    let (shape, s) = (shape_str(text), text.bytes());
    let mut found = Vec::new();
    for head in IBAN_HEADS {
        let mut from = 0;
        while let Some(at) = shape[from..].find(head).map(|p| p + from) {
            let iban =
                if at > 0 && word_byte(s[at - 1]) { None } else { iban_at(text.text, at, checks) };
            from = iban.as_ref().map_or(at + 1, |f| f.end);
            found.extend(iban);
        }
    }
    found
}

/// The text's shape as a string, for std's fast substring search.
pub(super) fn shape_str<'a>(text: &'a Text) -> &'a str {
    std::str::from_utf8(text.shape()).expect("a shape is ASCII")
}

/// The longest valid IBAN from `at`, cut at a separator or the end of the match of
/// `[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}` (which may run into a following code in capitals).
fn iban_at(text: &str, at: usize, checks: &dyn Checks) -> Option<Finding> {
    let s = text.as_bytes();
    let mut end = at + 4;
    let mut cuts = Vec::new();
    for _ in 0..IBAN_MAX {
        if s.get(end).is_some_and(u8::is_ascii_alphanumeric) {
            end += 1;
        } else if matches!(s.get(end), Some(b' ' | b'-'))
            && s.get(end + 1).is_some_and(u8::is_ascii_alphanumeric)
        {
            cuts.push(end);
            end += 2;
        } else {
            break;
        }
    }
    let reps = end - at - 4 - cuts.len();
    if reps < IBAN_MIN {
        return None;
    }
    for end in std::iter::once(end).chain(cuts.into_iter().rev()) {
        if end < s.len() && word_byte(s[end]) {
            continue;
        }
        let candidate = text[at..end].to_ascii_uppercase();
        let compact = candidate.replace([' ', '-'], "");
        if mod_97_10(&compact) && checks.valid("iban", &candidate) {
            return Some(Finding::new(at, end, "iban", compact));
        }
    }
    None
}

/// ISO 7064 mod 97-10 over the IBAN moved to end with its country and check digits: what
/// python-stdnum's IBAN check tests first, here to spare a call into Python for each cut that
/// fails it.
fn mod_97_10(iban: &str) -> bool {
    let (head, rest) = iban.split_at(4);
    let rem = rest.bytes().chain(head.bytes()).fold(0u32, |rem, c| match c {
        b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
        _ => (rem * 100 + u32::from(c - b'A' + 10)) % 97,
    });
    rem == 1
}

// Domestic bank details, which carry no checksum of their own (but a US routing number):
// digits that a word naming them stands just before.
const ROUTING_WORDS: &[&str] = &["routing", "aba", "rtn", "transit number"];
const ACCOUNT_WORDS: &[&str] =
    &["account", "acct", "a/c", "konto", "compte", "cuenta", "conta ", "rekening"];
const SORT_CODE_WORDS: &[&str] = &["sort code", "sortcode", "sort-code"];
const BANK_WORDS: [&[&str]; 3] = [ROUTING_WORDS, ACCOUNT_WORDS, SORT_CODE_WORDS];

fn bank_accounts(text: &Text, checks: &dyn Checks) -> Vec<Finding> {
    let (s, t) = (text.bytes(), text.text);
    let mut found = Vec::new();
    for (start, end, _) in text.clusters(6) {
        let before = text.before(start, 32);
        if !BANK_WORDS.iter().any(|words| mentions(&before, words)) {
            continue; // the words are looked for again, closer, for each number
        }
        for (a, b) in matches(start, end, |p| account_at(s, p, end)) {
            let digits = only_digits(&t[a..b]);
            let before = text.before(a, 24);
            if mentions(&before, ACCOUNT_WORDS)
                || (digits.len() == 9
                    && mentions(&before, ROUTING_WORDS)
                    && checks.valid("rtn", &digits))
            {
                found.push(Finding::new(a, b, "bank_account", digits));
            }
        }
        for (a, b) in matches(start, end, |p| sort_code_at(s, p, end)) {
            if mentions(&text.before(a, 16), SORT_CODE_WORDS) {
                found.push(Finding::new(a, b, "bank_account", only_digits(&t[a..b])));
            }
        }
    }
    found
}

/// Python's `finditer` over `start..end`: each match `at(p)` ends, tried at every position
/// from `start` on and from the end of the last match.
fn matches(start: usize, end: usize, at: impl Fn(usize) -> Option<usize>) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut p = start;
    while p < end {
        match at(p) {
            Some(e) => {
                found.push((p, e));
                p = e;
            }
            None => p += 1,
        }
    }
    found
}

fn only_digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Not `(?<![\d.,-])`: no digit, decimal point or dash just before `p`.
fn free_before(s: &[u8], p: usize) -> bool {
    p == 0 || !matches!(s[p - 1], b'0'..=b'9' | b'.' | b',' | b'-')
}

/// Not `(?![\d-]|[.,]\d)` at `e` in `s[..end]`.
fn free_after(s: &[u8], e: usize, end: usize) -> bool {
    !(e < end
        && (s[e].is_ascii_digit()
            || s[e] == b'-'
            || (matches!(s[e], b'.' | b',') && e + 1 < end && s[e + 1].is_ascii_digit())))
}

/// The end of `(?<![\d.,-])\d(?:[ -]?\d){5,16}(?![\d-]|[.,]\d)` matched at `p` in `s[..end]`:
/// the most digits after which the lookahead holds.
fn account_at(s: &[u8], p: usize, end: usize) -> Option<usize> {
    if !(s[p].is_ascii_digit() && free_before(s, p)) {
        return None;
    }
    let mut ends = Vec::new();
    let mut i = p + 1;
    while ends.len() < 16 {
        if i < end && s[i].is_ascii_digit() {
            i += 1;
        } else if i + 1 < end && matches!(s[i], b' ' | b'-') && s[i + 1].is_ascii_digit() {
            i += 2;
        } else {
            break;
        }
        ends.push(i);
    }
    ends.iter().skip(4).rev().copied().find(|&e| free_after(s, e, end))
}

/// The end of `(?<![\d.,-])\d{2}([ -]?)\d{2}\1\d{2}(?![\d-]|[.,]\d)` matched at `p` in
/// `s[..end]`.
fn sort_code_at(s: &[u8], p: usize, end: usize) -> Option<usize> {
    let pair = |i: usize| i + 2 <= end && s[i].is_ascii_digit() && s[i + 1].is_ascii_digit();
    if !(free_before(s, p) && pair(p)) {
        return None;
    }
    let sep: &[u8] =
        if p + 2 < end && matches!(s[p + 2], b' ' | b'-') { &s[p + 2..p + 3] } else { b"" };
    let mut i = p + 2;
    for _ in 0..2 {
        if !(s[i..end].starts_with(sep) && pair(i + sep.len())) {
            return None;
        }
        i += sep.len() + 2;
    }
    free_after(s, i, end).then_some(i)
}
