//! US social security numbers (and ITINs) and national ids, each validated by its own rules
//! (ported from agent/sidecar/redaction/national.py; held to it by
//! tests/test_native_redaction.py). An id whose official form is distinctive is taken as it
//! stands; one written as bare digits, or whose checksum one number in ten passes, also needs
//! a word that names it just before it. python-stdnum's checks stay in Python (`Checks`).

use std::sync::LazyLock;

use regex::Regex;

use super::Detect;
use super::finance::{luhn, shape_str};
use super::text::{Checks, Finding, Text, mentions, word_byte};

pub const DETECTORS: &[(&str, Detect)] =
    &[("us_ids", us_ids), ("national_ids", national_ids), ("letter_ids", letter_ids)];

/// An id's official form: '0' a digit, 'S' a separator of `seps` (the same one each time),
/// anything else itself.
struct Official {
    form: &'static [u8],
    seps: &'static [u8],
}

impl Official {
    fn fullmatch(&self, s: &[u8]) -> bool {
        let mut sep = None;
        s.len() == self.form.len()
            && self.form.iter().zip(s).all(|(&f, &c)| match f {
                b'0' => c.is_ascii_digit(),
                b'S' => self.seps.contains(&c) && *sep.get_or_insert(c) == c,
                _ => f == c,
            })
    }
}

/// An id of `digits` digits, maybe with separators. Written in its `official` form it needs
/// no context; otherwise one of `words` must come before it. `check` is its validator's name
/// in national.py's CHECKS.
struct NumericId {
    kind: &'static str,
    digits: usize,
    check: &'static str,
    words: &'static [&'static str],
    official: Option<Official>,
}

const fn national(
    digits: usize,
    check: &'static str,
    words: &'static [&'static str],
    official: Option<Official>,
) -> NumericId {
    NumericId { kind: "national_id", digits, check, words, official }
}

const fn form(form: &'static [u8]) -> Option<Official> {
    Some(Official { form, seps: b"" })
}

const SSN_WORDS: &[&str] =
    &["ssn", "social security", "ss#", "soc sec", "social sec", "itin", "taxpayer"];
const SSN_FORM: Official = Official { form: b"000S00S0000", seps: b"- " };
const US_IDS: &[NumericId] = &[
    NumericId { kind: "ssn", digits: 9, check: "ssn", words: SSN_WORDS, official: Some(SSN_FORM) },
    NumericId { kind: "ssn", digits: 9, check: "itin", words: SSN_WORDS, official: Some(SSN_FORM) },
];
const NATIONAL_IDS: &[NumericId] = &[
    national(
        12,
        "aadhaar",
        &["aadhaar", "aadhar", "uidai", "uid"],
        Some(Official { form: b"0000S0000S0000", seps: b" -" }),
    ),
    national(
        15,
        "nir",
        &["securite sociale", "nir", "insee", "social security"],
        form(b"0 00 00 00 000 000 00"),
    ),
    national(11, "cpf", &["cpf", "cadastro de pessoas"], form(b"000.000.000-00")),
    national(
        11,
        "idnr",
        &[
            "steuer-id",
            "steuerid",
            "steuer id",
            "steuerliche",
            "identifikationsnummer",
            "idnr",
            "tax id",
            "tin",
        ],
        None,
    ),
    national(9, "sin", &["sin", "social insurance", "assurance sociale", "nas"], None),
    national(9, "bsn", &["bsn", "burgerservicenummer", "sofinummer"], None),
    national(9, "nif", &["nif", "contribuinte", "numero fiscal"], None),
    national(12, "my_number", &["my number", "mynumber"], None),
    national(18, "ric", &["resident", "id card"], form(b"000000000000000000")),
    national(13, "rrn", &["rrn", "resident registration"], form(b"000000-0000000")),
    national(13, "za_idnr", &["id number", "identity number", "sa id", "rsa id", "id no"], None),
    national(11, "pesel", &["pesel"], None),
    national(10, "personnummer", &["personnummer", "person number"], form(b"000000-0000")),
    national(
        11,
        "nn",
        &["rijksregister", "registre national", "national number"],
        form(b"00.00.00-000.00"),
    ),
    national(13, "ahv", &["ahv", "avs", "sozialversicherung"], form(b"756.0000.0000.00")),
    national(9, "tfn", &["tfn", "tax file"], None),
    national(11, "cuit", &["cuit", "cuil"], form(b"00-00000000-0")),
    national(10, "vnr", &["svnr", "sozialversicherung", "versicherungsnummer", "e-card"], None),
    national(10, "nhs", &["nhs"], None),
    national(15, "luhn", &["emirates id", "eid"], form(b"784-0000-0000000-0")),
    // ids without a check digit: their context is all there is to go by
    national(11, "any", &["nin", "national identification number"], None),
    national(8, "any", &["dni", "documento", "cedula", "c.c."], None),
    national(10, "any", &["cedula", "c.c."], None),
];

fn us_ids(text: &Text, checks: &dyn Checks) -> Vec<Finding> {
    numeric_ids(text, checks, US_IDS)
}

fn national_ids(text: &Text, checks: &dyn Checks) -> Vec<Finding> {
    numeric_ids(text, checks, NATIONAL_IDS)
}

/// Whether `value` passes the named check: the simple ones here, python-stdnum's in Python.
fn valid(check: &str, value: &str, checks: &dyn Checks) -> bool {
    match check {
        "ssn" => ssn_valid(value.as_bytes()),
        "itin" => itin_valid(value.as_bytes()),
        "luhn" => luhn(value),
        "any" | "nino" => true,
        "nric" => nric_valid(value.as_bytes()),
        _ => checks.valid(check, value),
    }
}

/// Area 001-899 but 666, group 01-99, serial 0001-9999 (the SSA's rules since 2011).
fn ssn_valid(n: &[u8]) -> bool {
    let (area, group, serial) = (&n[..3], &n[3..5], &n[5..]);
    area != b"000"
        && area != b"666"
        && area < b"900".as_slice()
        && group != b"00"
        && serial != b"0000"
}

/// 9xx-7x-xxxx: the IRS's taxpayer numbers for those without an SSN.
fn itin_valid(n: &[u8]) -> bool {
    let group = (n[3] - b'0') * 10 + (n[4] - b'0');
    n[0] == b'9' && matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99)
}

fn numeric_ids(text: &Text, checks: &dyn Checks, ids: &[NumericId]) -> Vec<Finding> {
    let (s, t) = (text.bytes(), text.text);
    let mut lengths: Vec<usize> = ids.iter().map(|i| i.digits).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let mut found = Vec::new();
    for (start, end, digits) in text.clusters(lengths[0]) {
        for &n in lengths.iter().take_while(|&&n| n <= digits) {
            let mut p = start;
            while p < end {
                let Some(e) = candidate_at(s, p, end, n) else {
                    p += 1;
                    continue;
                };
                let number: String = t[p..e].chars().filter(char::is_ascii_digit).collect();
                if let Some(kind) = identify(text, checks, p, e, &number, ids, n) {
                    found.push(Finding::new(p, e, kind, number));
                }
                p = e;
            }
        }
    }
    found
}

/// The end of `(?<![\d.-])\d(?:[ .\-]?\d){n-1}(?![\d-]|\.\d)` matched at `p` in `s[..end]`.
fn candidate_at(s: &[u8], p: usize, end: usize, n: usize) -> Option<usize> {
    if !s[p].is_ascii_digit() || (p > 0 && matches!(s[p - 1], b'0'..=b'9' | b'.' | b'-')) {
        return None;
    }
    let mut i = p + 1;
    for _ in 1..n {
        if i < end && s[i].is_ascii_digit() {
            i += 1;
        } else if i + 1 < end && matches!(s[i], b' ' | b'.' | b'-') && s[i + 1].is_ascii_digit() {
            i += 2;
        } else {
            return None;
        }
    }
    let blocked = i < end
        && (s[i].is_ascii_digit()
            || s[i] == b'-'
            || (s[i] == b'.' && i + 1 < end && s[i + 1].is_ascii_digit()));
    (!blocked).then_some(i)
}

/// The kind of the first id of `n` digits the candidate is: written in its official form, or
/// named by a word before it; then checked (the context first: it costs less than a checksum).
fn identify(
    text: &Text,
    checks: &dyn Checks,
    start: usize,
    end: usize,
    number: &str,
    ids: &[NumericId],
    n: usize,
) -> Option<&'static str> {
    let written = &text.bytes()[start..end];
    let mut before: Option<String> = None;
    for spec in ids.iter().filter(|i| i.digits == n) {
        if !spec.official.as_ref().is_some_and(|o| o.fullmatch(written)) {
            let before = before.get_or_insert_with(|| text.before(start, 40));
            if !mentions(before, spec.words) {
                continue;
            }
        }
        if valid(spec.check, number, checks) {
            return Some(spec.kind);
        }
    }
    None
}

// Ids with letters, found where the text's shape has their letters and digits in place.
fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}
static DNI_NIE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?:[0-9]{8}|[XYZxyz]-?[0-9]{7})-?[A-Za-z]"));
static PAN: LazyLock<Regex> = LazyLock::new(|| regex(r"[A-Z]{5}[0-9]{4}[A-Z]"));
static FISCAL_CODE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"[A-Z]{6}[0-9]{2}[A-Z][0-9]{2}[A-Z][0-9]{3}[A-Z]"));
static CURP: LazyLock<Regex> =
    LazyLock::new(|| regex(r"[A-Z]{4}[0-9]{6}[HMX][A-Z]{5}[A-Z0-9][0-9]"));
static RIC: LazyLock<Regex> = LazyLock::new(|| regex(r"[0-9]{17}[Xx]"));
static PPS: LazyLock<Regex> = LazyLock::new(|| regex(r"[0-9]{7}[A-W][A-IW]?"));
static RFC: LazyLock<Regex> = LazyLock::new(|| regex(r"[A-Z&]{3,4}[0-9]{6}[A-Z0-9]{3}"));
static EPIC: LazyLock<Regex> = LazyLock::new(|| regex(r"[A-Z]{3}[0-9]{7}"));
static NRIC: LazyLock<Regex> = LazyLock::new(|| regex(r"[STFGM][0-9]{7}[A-Z]"));

enum Pattern {
    /// The UK NINO's, whose backreference and lookahead the regex crate lacks.
    Nino,
    Regex(&'static LazyLock<Regex>),
}

impl Pattern {
    /// (start, end) of the first match in `text[pos..endpos]`, as Python's `search`.
    fn search(&self, text: &str, pos: usize, endpos: usize) -> Option<(usize, usize)> {
        match self {
            Pattern::Nino => {
                let s = &text.as_bytes()[..endpos];
                (pos..endpos).find_map(|p| nino_at(s, p).map(|e| (p, e)))
            }
            Pattern::Regex(re) => re.find_at(&text[..endpos], pos).map(|m| (m.start(), m.end())),
        }
    }
}

/// The end of `(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z](?P<sep> ?)\d{2}
/// (?P=sep)\d{2}(?P=sep)\d{2}(?P=sep)[A-D]` matched at `p`.
fn nino_at(s: &[u8], p: usize) -> Option<usize> {
    let pair: [u8; 2] = s.get(p..p + 2)?.try_into().ok()?;
    // [A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]: no D, F, I, Q, U or V, and no O second
    let letter = |c: u8| c.is_ascii_uppercase() && !b"DFIQUV".contains(&c);
    if !(letter(pair[0]) && letter(pair[1]) && pair[1] != b'O')
        || [*b"BG", *b"GB", *b"NK", *b"KN", *b"TN", *b"NT", *b"ZZ"].contains(&pair)
    {
        return None;
    }
    let sep: &[u8] = if s.get(p + 2) == Some(&b' ') { b" " } else { b"" };
    let mut i = p + 2;
    for _ in 0..3 {
        if !s[i..].starts_with(sep) {
            return None;
        }
        i += sep.len();
        if !s.get(i..i + 2)?.iter().all(u8::is_ascii_digit) {
            return None;
        }
        i += 2;
    }
    if !s[i..].starts_with(sep) {
        return None;
    }
    i += sep.len();
    matches!(s.get(i), Some(b'A'..=b'D')).then_some(i + 1)
}

/// Singapore's NRIC and FIN: a weighted sum of the digits picks the check letter.
fn nric_valid(n: &[u8]) -> bool {
    let (offset, letters): (u32, &[u8]) = match n[0] {
        b'S' => (0, b"JZIHGFEDCBA"),
        b'T' => (4, b"JZIHGFEDCBA"),
        b'F' => (0, b"XWUTRQPNMLK"),
        b'G' => (4, b"XWUTRQPNMLK"),
        b'M' => (3, b"XWUTRQPNJLK"),
        _ => return false,
    };
    let sum: u32 =
        n[1..8].iter().zip([2, 7, 6, 5, 4, 3, 2]).map(|(&d, w)| u32::from(d - b'0') * w).sum();
    letters[((offset + sum) % 11) as usize] == n[8]
}

struct LetterId {
    heads: &'static [&'static str], // its shape, or the part of it that the search starts from
    back: usize,                    // how far before a head the id may start
    pattern: Pattern,
    check: &'static str,
    words: &'static [&'static str], // of which one must come before, if any are given
}

const fn letter_id(
    heads: &'static [&'static str],
    pattern: Pattern,
    check: &'static str,
) -> LetterId {
    LetterId { heads, back: 0, pattern, check, words: &[] }
}

static CAPITAL_THEN_DIGIT: [LetterId; 7] = [
    letter_id(&["AA000000A", "AA 00 00 00 A"], Pattern::Nino, "nino"),
    letter_id(&["AAAAA0000A"], Pattern::Regex(&PAN), "pan"),
    letter_id(&["AAAAAA00A00A000A"], Pattern::Regex(&FISCAL_CODE), "codicefiscale"),
    letter_id(&["AAAA000000A"], Pattern::Regex(&CURP), "curp"),
    letter_id(&["AAAA000000", "AAA000000"], Pattern::Regex(&RFC), "rfc"),
    LetterId {
        words: &["epic", "voter"],
        ..letter_id(&["AAA0000000"], Pattern::Regex(&EPIC), "epic")
    },
    letter_id(&["A0000000A"], Pattern::Regex(&NRIC), "nric"),
];
static DIGITS_THEN_CAPITAL: [LetterId; 3] = [
    LetterId {
        back: 3,
        ..letter_id(
            &["0000000A", "0000000-A", "0000000a", "0000000-a"],
            Pattern::Regex(&DNI_NIE),
            "dni_nie",
        )
    },
    letter_id(&["00000000000000000A", "00000000000000000a"], Pattern::Regex(&RIC), "ric"),
    LetterId {
        words: &["pps", "personal public service"],
        ..letter_id(&["0000000A"], Pattern::Regex(&PPS), "pps")
    },
];

fn letter_ids(text: &Text, checks: &dyn Checks) -> Vec<Finding> {
    let (shape, s) = (shape_str(text), text.bytes());
    let mut specs: Vec<&LetterId> = Vec::new();
    if shape.contains("A0") || shape.contains("A 0") {
        specs.extend(&CAPITAL_THEN_DIGIT);
    }
    if shape.contains("0000000") {
        specs.extend(&DIGITS_THEN_CAPITAL);
    }
    let mut found = Vec::new();
    for spec in specs {
        for head in spec.heads {
            for at in occurrences(shape, head) {
                let endpos = (at + head.len() + 8).min(s.len());
                let Some((a, b)) =
                    spec.pattern.search(text.text, at.saturating_sub(spec.back), endpos)
                else {
                    continue;
                };
                if (a > 0 && word_byte(s[a - 1])) || (b < s.len() && word_byte(s[b])) {
                    continue;
                }
                let written = &text.text[a..b];
                if (spec.words.is_empty() || mentions(&text.before(a, 40), spec.words))
                    && valid(spec.check, written, checks)
                {
                    let value: String = written
                        .chars()
                        .filter(|c| !matches!(c, ' ' | '\t' | '\n' | '\r' | '-'))
                        .collect();
                    found.push(Finding::new(a, b, "national_id", value));
                }
            }
        }
    }
    found
}

/// Where `needle` occurs in `hay`, overlapping occurrences included.
fn occurrences<'a>(hay: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    let mut from = 0;
    std::iter::from_fn(move || {
        let at = from + hay[from..].find(needle)?;
        from = at + 1;
        Some(at)
    })
}
