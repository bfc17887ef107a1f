//! A text to scan and the cheap views its detectors share, as agent/sidecar/redaction/text.py
//! has them. Only plain ASCII text comes here (`plain_ascii`): a byte is a character, so
//! positions are the Python string's, and Python's `re` classes (\w, \d, \s) mean what the
//! ASCII classes here mean. Anything else takes the Python path.

use std::cell::OnceCell;

/// `text[start..end]` is a `kind`; `value` is its canonical form (pseudonyms hash it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    pub kind: String,
    pub value: String,
}

impl Finding {
    pub fn new(start: usize, end: usize, kind: &str, value: impl Into<String>) -> Self {
        Finding { start, end, kind: kind.to_string(), value: value.into() }
    }
}

/// What the detectors leave to Python's well-kept libraries (python-stdnum, libphonenumber):
/// called only for the few candidates that pass every cheap test first.
pub trait Checks {
    /// Whether `value` passes the named check (the names are those of checks.py's CHECKS).
    fn valid(&self, check: &str, value: &str) -> bool;
    /// The E.164 form of a phone candidate, or None (phones.py `Phones.number`); `before`
    /// is `Text::before(start, 32)`.
    fn phone(&self, candidate: &str, before: &str) -> Option<String>;
}

/// Printable ASCII and the whitespace Python's `\s` and Rust's agree on: what this path takes.
pub fn plain_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r'))
}

/// Digits become '0', letters 'A' or 'a', the separators numbers use stay, the rest is '#'.
fn shape_byte(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b'0',
        b'A'..=b'Z' => b'A',
        b'a'..=b'z' => b'a',
        b' ' | b'-' | b'.' | b'(' | b')' | b'/' | b'+' | b':' => b,
        _ => b'#',
    }
}

/// A character of keys and tokens (base64, base64url, Azure's '~').
pub fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'/' | b'=' | b'.' | b'~')
}

pub const TOKEN_MIN: usize = 16;

/// (start, end, digits) of a run of digits and the separators between them.
pub type Cluster = (usize, usize, usize);

pub struct Text<'a> {
    pub text: &'a str,
    pub context: &'a str,
    lower: OnceCell<String>,
    shape: OnceCell<Vec<u8>>,
    clusters: OnceCell<Vec<Cluster>>,
    runs: OnceCell<Vec<(usize, usize)>>,
}

impl<'a> Text<'a> {
    pub fn new(text: &'a str, context: &'a str) -> Self {
        Text {
            text,
            context,
            lower: OnceCell::new(),
            shape: OnceCell::new(),
            clusters: OnceCell::new(),
            runs: OnceCell::new(),
        }
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    pub fn lower(&self) -> &str {
        self.lower.get_or_init(|| self.text.to_ascii_lowercase())
    }

    pub fn shape(&self) -> &[u8] {
        self.shape.get_or_init(|| self.text.bytes().map(shape_byte).collect())
    }

    /// Each run of digits and separators holding at least `min_digits` (>= 4) digits: the
    /// matches of `0(?:[ \-.()/]{0,3}0){3,}` on the shape.
    pub fn clusters(&self, min_digits: usize) -> Vec<Cluster> {
        let all = self.clusters.get_or_init(|| {
            let shape = self.shape();
            let mut out = Vec::new();
            if shape.iter().filter(|&&b| b == b'0').count() < 4 {
                return out;
            }
            let mut i = 0;
            while i < shape.len() {
                if shape[i] != b'0' {
                    i += 1;
                    continue;
                }
                let (mut end, mut zeros) = (i + 1, 1);
                loop {
                    let mut j = end;
                    while j < shape.len() && j - end < 3 && b" -.()/".contains(&shape[j]) {
                        j += 1;
                    }
                    if j < shape.len() && shape[j] == b'0' {
                        end = j + 1;
                        zeros += 1;
                    } else {
                        break;
                    }
                }
                if zeros >= 4 {
                    out.push((i, end, zeros));
                    i = end;
                } else {
                    i += 1;
                }
            }
            out
        });
        all.iter().copied().filter(|c| c.2 >= min_digits).collect()
    }

    /// The digits of the longest run that stands free (0 when none holds 4): a run glued to
    /// a word before it (chatcmpl-0000000062) is part of an id, unless a space is inside.
    pub fn most_digits(&self) -> usize {
        let (s, shape) = (self.bytes(), self.shape());
        self.clusters(4)
            .into_iter()
            .filter(|&(start, end, _)| {
                let glued = start > 0
                    && (word_byte(s[start - 1])
                        || (b"-.".contains(&s[start - 1]) && start > 1 && word_byte(s[start - 2])));
                !glued || shape[start..end].contains(&b' ')
            })
            .map(|c| c.2)
            .max()
            .unwrap_or(0)
    }

    /// (start, end) of each run of at least TOKEN_MIN key characters.
    pub fn token_runs(&self) -> &[(usize, usize)] {
        self.runs.get_or_init(|| {
            let s = self.bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < s.len() {
                if !token_byte(s[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < s.len() && token_byte(s[i]) {
                    i += 1;
                }
                if i - start >= TOKEN_MIN {
                    out.push((start, i));
                }
            }
            out
        })
    }

    /// Whether `word` (lower-case letters and digits) is one of the text's words, those
    /// that text.py's `words` splits out: looked for where it stands, not by building the
    /// set, which costs more than the few words a scan asks about.
    pub fn has_word(&self, word: &str) -> bool {
        let lower = self.lower();
        positions(lower, word, 0).into_iter().any(|at| whole_word(lower.as_bytes(), at, word.len()))
    }

    /// The lower-case text just before `start` (at most `chars`), where context words are
    /// looked for; the context (the key of a JSON value) stands before the text.
    pub fn before(&self, start: usize, chars: usize) -> String {
        let lower = self.lower();
        if start >= chars || self.context.is_empty() {
            return lower[start.saturating_sub(chars)..start].to_string();
        }
        let joined = format!("{}: {}", self.context.to_lowercase(), &lower[..start]);
        let chars_total = joined.chars().count();
        joined.chars().skip(chars_total.saturating_sub(chars)).collect()
    }
}

/// A character that glues to a number or a key: an ASCII letter, digit or '_'.
pub fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

pub fn mentions(window: &str, words: &[&str]) -> bool {
    words.iter().any(|w| window.contains(w))
}

/// Where `needle` occurs in `hay` from `from` on, overlapping occurrences included (the
/// standard library's vectorised substring search).
pub fn positions(hay: &str, needle: &str, from: usize) -> Vec<usize> {
    let mut found = Vec::new();
    let mut at = from;
    while let Some(i) = hay.get(at..).and_then(|rest| rest.find(needle)) {
        found.push(at + i);
        at += i + 1;
    }
    found
}

/// Whether `lower[at..at + len]` is a whole word: no ASCII letter or digit on either side.
pub fn whole_word(lower: &[u8], at: usize, len: usize) -> bool {
    let end = at + len;
    (at == 0 || !lower[at - 1].is_ascii_alphanumeric())
        && (end == lower.len() || !lower[end].is_ascii_alphanumeric())
}

/// Shannon entropy in bits per character.
pub fn entropy(text: &str) -> f64 {
    // summed in order of first occurrence, as Python's Counter does: the same float
    let mut counts = [0usize; 256];
    let mut order = Vec::new();
    for b in text.bytes() {
        if counts[b as usize] == 0 {
            order.push(b);
        }
        counts[b as usize] += 1;
    }
    let n = text.len() as f64;
    let mut total = 0.0;
    for b in order {
        let p = counts[b as usize] as f64 / n;
        total += p * p.log2();
    }
    if n == 0.0 { 0.0 } else { -total }
}
