//! Keys and tokens (agent/sidecar/redaction/keys.py): provider keys by their documented
//! prefixes, an AWS secret key beside its key id, JWTs, PEM private keys, Authorization headers
//! (Bearer, Basic), and long random strings that a word like "secret" introduces.
//!
//! Python's `re` backtracks; the regex crate's leftmost-first matches are the ones a
//! backtracking engine prefers, so a pattern without lookarounds is compiled as it is, and a
//! lookbehind is checked by hand before an anchored match. A lookahead becomes one consumed
//! character (or the end), which keeps Python's order: with `(?!…)` failing, Python backtracks
//! into shorter repetitions and later alternatives, and so does the alternation followed by
//! `(?:[^…]|\z)`.
//!
//! Left to Python (keys.py `CHECKS`): Basic credentials that decode to non-ASCII text (whose
//! printability is Unicode's to say) or whose padding Python versions judge differently, and a
//! JWT header nested deeper than Python's json surely takes.

use std::sync::LazyLock;

use regex::bytes::{Regex, RegexBuilder};

use super::Detect;
use super::text::{Checks, Finding, Text, entropy, mentions, positions, whole_word};

pub const DETECTORS: &[(&str, Detect)] = &[
    ("private_keys", private_keys),
    ("auth_headers", auth_headers),
    ("jwts", jwts),
    ("provider_keys", provider_keys),
    ("introduced_secrets", introduced_secrets),
];

/// keys.py `_PROVIDER_KEYS`, in its order (the alternation prefers the first that matches).
const PROVIDER_KEYS: &[&str] = &[
    // AWS access key id
    r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}",
    // Google API key
    r"AIza[0-9A-Za-z_-]{35}",
    // Google OAuth client secret
    r"GOCSPX-[0-9A-Za-z_-]{28}",
    // Google OAuth access token
    r"ya29\.[0-9A-Za-z_-]{20,}",
    // GitHub
    r"gh[pousr]_[A-Za-z0-9]{36,255}",
    r"github_pat_[A-Za-z0-9_]{22,255}",
    // GitLab
    r"gl(?:pat|dt|ft|rt|soat|cbt|imt|ptt)-[A-Za-z0-9_-]{20,}",
    // Slack
    r"xox[abeoprs]-[A-Za-z0-9-]{10,}",
    r"xapp-\d-[A-Za-z0-9-]{20,}",
    // Stripe
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,99}",
    // Anthropic
    r"sk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_-]{20,}",
    // OpenAI and OpenAI-compatible APIs
    r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
    // Hugging Face
    r"(?:hf|api_org)_[A-Za-z0-9]{30,}",
    r"npm_[A-Za-z0-9]{36}",
    r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}",
    // SendGrid
    r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",
    // Twilio
    r"SK[0-9a-fA-F]{32}",
    // Mailgun
    r"key-[0-9a-zA-Z]{32}",
    // Databricks
    r"dapi[a-f0-9]{32}(?:-\d)?",
    // DigitalOcean
    r"do[opr]_v1_[a-f0-9]{64}",
    // Shopify
    r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",
    // xAI
    r"xai-[A-Za-z0-9]{40,}",
    // Groq
    r"gsk_[A-Za-z0-9]{40,}",
    // Replicate
    r"r8_[A-Za-z0-9]{30,}",
    // Perplexity
    r"pplx-[A-Za-z0-9]{40,}",
    // LangSmith
    r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}",
    // Pinecone
    r"pcsk_[A-Za-z0-9_]{40,}",
    // HashiCorp Vault
    r"hvs\.[A-Za-z0-9_-]{90,}",
    r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
    // Postman
    r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}",
    // Sentry
    r"sntrys_[A-Za-z0-9+/=_]{40,}",
    // Supabase
    r"sbp_[a-f0-9]{40}",
    // Notion
    r"(?:ntn|secret)_[A-Za-z0-9]{40,}",
    // Linear
    r"lin_api_[A-Za-z0-9]{40}",
    // Doppler
    r"dp\.pt\.[A-Za-z0-9]{43}",
    // Grafana Cloud
    r"glc_[A-Za-z0-9+/]{32,}={0,2}",
    // Grafana service account
    r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",
    // Square
    r"sq0(?:atp|csp)-[0-9A-Za-z_-]{22,43}",
    // Atlassian
    r"ATATT3[A-Za-z0-9_=-]{150,}",
    // Telegram bot
    r"\d{8,10}:AA[0-9A-Za-z_-]{33}",
    // Slack webhook path
    r"T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{24}",
    // AWS session token
    r"(?:IQoJb3JpZ2luX2Vj|FwoGZXIvYXdzE)[A-Za-z0-9/+=]{40,}",
    // Azure AD client secret
    r"[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}",
    // Stripe webhook secret
    r"whsec_[A-Za-z0-9+/=]{24,}",
    // New Relic
    r"NRAK-[A-Z0-9]{27}",
    // Figma
    r"figd_[A-Za-z0-9_-]{40,}",
    // Brevo
    r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}",
    // PlanetScale
    r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{32,}",
    // Pulumi
    r"pul-[a-f0-9]{40}",
    // Fly.io, Render, Resend, Fireworks, Cerebras
    r"(?:fo1|rnd|re|fw|csk)_[A-Za-z0-9_-]{24,}",
    // Dropbox
    r"sl\.[A-Za-z0-9_-]{130,}",
    // Airtable
    r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}",
    // Terraform Cloud
    r"[a-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}",
    // Mailchimp
    r"[0-9a-f]{32}-us\d{1,2}",
    // Discord bot
    r"[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}",
    // Google OAuth refresh token
    r"1//0[A-Za-z0-9_-]{40,}",
];

fn compile(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .unicode(false) // bytes; \d and \s are ASCII's, as Python's are on ASCII text
        .build()
        .expect("a keys.rs pattern compiles")
}

/// `_PROVIDER` anchored at a start whose lookbehind passed: group 1 is the key, and its
/// lookahead `(?![A-Za-z0-9_-])` is the character consumed after it (or the end).
static PROVIDER: LazyLock<Regex> = LazyLock::new(|| {
    compile(&format!(r"\A((?:{}))(?:[^A-Za-z0-9_-]|\z)", PROVIDER_KEYS.join("|")))
});
const LOOKBACK: usize = 12; // a Telegram token's digits stand before the run, across its ':'
// keys.py `_AWS_IDS`: the access key ids' prefixes
const AWS_IDS: [&[u8]; 5] = [b"AKIA", b"ASIA", b"ABIA", b"ACCA", b"A3T"];
const PLACEHOLDER_WORDS: [&str; 13] = [
    "xxxx",
    "your",
    "here",
    "placeholder",
    "dummy",
    "fake",
    "redacted",
    "changeme",
    "insert",
    "replace",
    "<",
    "...",
    "****",
];

/// `[A-Za-z0-9_-]`: what the boundaries of keys (and JWTs' `[\w-]`) look at.
fn key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Python's `\s` and `str.isspace` on ASCII.
fn py_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1f)
}

fn run_len(s: &[u8], from: usize, class: impl Fn(u8) -> bool) -> usize {
    s.get(from..).map_or(0, |rest| rest.iter().take_while(|&&b| class(b)).count())
}

fn provider_keys(text: &Text, _checks: &dyn Checks) -> Vec<Finding> {
    let s = text.bytes();
    let mut locations = PROVIDER.capture_locations();
    let mut found = Vec::new();
    for &(start, end) in text.token_runs() {
        // `_PROVIDER.finditer(s, max(0, start - 12), end)`: the lookbehind sees before the
        // region, the lookahead sees the region's end as the text's
        let hay = &s[..end];
        let mut at = start.saturating_sub(LOOKBACK);
        while at < end {
            if at > 0 && key_byte(s[at - 1]) {
                at += 1;
                continue;
            }
            if PROVIDER.captures_read(&mut locations, &hay[at..]).is_none() {
                at += 1;
                continue;
            }
            let (_, key_end) = locations.get(1).expect("group 1 takes part in every match");
            let (key_start, key_end) = (at, at + key_end);
            let key = &text.text[key_start..key_end];
            if key_body(key) {
                found.push(Finding::new(key_start, key_end, "api_key", key));
            }
            at = key_end;
        }
    }
    // an AWS secret key has no prefix of its own; it stands next to its access key id
    let secrets: Vec<Finding> = found
        .iter()
        .filter(|f| AWS_IDS.iter().any(|id| f.value.as_bytes().starts_with(id)))
        .filter_map(|f| aws_secret(text, f.end))
        .collect();
    found.extend(secrets);
    found
}

/// The part after the provider's prefix (sk-proj-, ghp_, xoxb-) holds a digit or both cases,
/// is not one character repeated, and says nothing like "your key here".
fn key_body(key: &str) -> bool {
    // `^(?:[A-Za-z0-9]{1,12}[_\-.])+` removed: each round is one run of 1 to 12 letters and
    // digits and its separator (a longer run leaves a letter or digit where one must stand)
    let b = key.as_bytes();
    let mut prefix = 0;
    loop {
        let word = run_len(b, prefix, |c| c.is_ascii_alphanumeric());
        if (1..=12).contains(&word) && matches!(b.get(prefix + word), Some(b'_' | b'-' | b'.')) {
            prefix += word + 1;
        } else {
            break;
        }
    }
    let body = if prefix < b.len() { &key[prefix..] } else { key };
    let lower = key.to_ascii_lowercase();
    let first = body.as_bytes()[0];
    mixed(body)
        && body.bytes().any(|c| c != first)
        && !PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w))
}

/// `_AWS_SECRET.search(s, after, after + 120)`: 40 characters of `[A-Za-z0-9/+]`, a whole run
/// of them (the region's end counting as the text's), not followed by '='.
fn aws_secret(text: &Text, after: usize) -> Option<Finding> {
    let secret_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'/' || b == b'+';
    let s = text.bytes();
    let stop = (after + 120).min(s.len());
    let mut at = after;
    while at + 40 <= stop {
        if at > 0 && secret_byte(s[at - 1]) {
            at += 1;
            continue;
        }
        let run = run_len(&s[..stop], at, secret_byte);
        if run == 40 && (at + 40 == stop || s[at + 40] != b'=') {
            let secret = &text.text[at..at + 40];
            return looks_random(secret).then(|| Finding::new(at, at + 40, "api_key", secret));
        }
        at += run.max(1); // no 40 can start inside this run: its lookbehind fails
    }
    None
}

/// A digit, or both cases, and enough entropy: what a generated key has and a placeholder
/// (sk_test_xxxxxxxx) or a hyphenated name (sk-learn-style-names) has not.
pub fn looks_random(body: &str) -> bool {
    mixed(body) && entropy(body) >= 3.0
}

/// A digit, or both cases.
pub fn mixed(text: &str) -> bool {
    let b = text.as_bytes();
    b.iter().any(u8::is_ascii_digit)
        || (b.iter().any(u8::is_ascii_uppercase) && b.iter().any(u8::is_ascii_lowercase))
}

fn jwts(text: &Text, checks: &dyn Checks) -> Vec<Finding> {
    let s = text.bytes();
    let mut found = Vec::new();
    for &(start, end) in text.token_runs() {
        let hay = &s[..end];
        let mut at = start;
        while let Some(i) = find(&hay[at..], b"eyJ") {
            at += i;
            if at > 0 && key_byte(s[at - 1]) {
                at += 1;
                continue;
            }
            match jwt_at(hay, at) {
                Some((header_end, jwt_end)) => {
                    if jwt_header(&s[at..header_end], checks) {
                        found.push(Finding::new(at, jwt_end, "jwt", &text.text[at..jwt_end]));
                    }
                    at = jwt_end;
                }
                None => at += 1,
            }
        }
    }
    found
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*` at `at` (each repetition
/// stops where the next piece must stand): (end of the header, end of the token).
fn jwt_at(s: &[u8], at: usize) -> Option<(usize, usize)> {
    let segment = |from: usize| -> Option<usize> {
        if !s[from..].starts_with(b"eyJ") {
            return None;
        }
        let n = run_len(s, from + 3, key_byte);
        let end = from + 3 + n;
        (n >= 8 && s.get(end) == Some(&b'.')).then_some(end)
    };
    let header_end = segment(at)?;
    let payload_end = segment(header_end + 1)?;
    Some((header_end, payload_end + 1 + run_len(s, payload_end + 1, key_byte)))
}

/// `_jwt_header`: the base64url segment decodes to JSON (as Python's json.loads reads bytes)
/// whose value is an object with "alg" or "typ".
fn jwt_header(segment: &[u8], checks: &dyn Checks) -> bool {
    let mut data: Vec<u8> = segment
        .iter()
        .map(|&b| match b {
            b'-' => b'+',
            b'_' => b'/',
            b => b,
        })
        .collect();
    data.resize(segment.len().next_multiple_of(4), b'=');
    // "eyJ" decodes to '{"': json.loads takes the bytes as UTF-8, with 'surrogatepass'
    let Some(raw) = a2b_base64(&data, false).filter(|raw| utf8_surrogatepass(raw)) else {
        return false;
    };
    match json_header(&raw) {
        Some(header) => header,
        // nested deeper than Python's recursion allows for sure: Python's to say (no, where
        // its json raises RecursionError)
        None => checks.valid("jwt_header", std::str::from_utf8(segment).unwrap_or_default()),
    }
}

/// CPython 3.11's `binascii.a2b_base64(data, strict_mode=strict)`, None where it raises.
fn a2b_base64(data: &[u8], strict: bool) -> Option<Vec<u8>> {
    if strict && data.first() == Some(&b'=') {
        return None; // leading padding
    }
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 3);
    let (mut quad, mut pads, mut left, mut padding) = (0u8, 0u8, 0u8, false);
    for (i, &c) in data.iter().enumerate() {
        if c == b'=' {
            padding = true;
            if quad >= 2 {
                pads += 1;
                if quad + pads >= 4 {
                    // strict: excess data after padding
                    return (!strict || i + 1 == data.len()).then_some(out);
                }
            }
            continue;
        }
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ if strict => return None,
            _ => continue,
        };
        if strict && padding {
            return None; // discontinuous padding
        }
        pads = 0;
        match quad {
            0 => left = v,
            1 => {
                out.push(left << 2 | v >> 4);
                left = v & 0x0f;
            }
            2 => {
                out.push(left << 4 | v >> 2);
                left = v & 0x03;
            }
            _ => out.push(left << 6 | v),
        }
        quad = (quad + 1) % 4;
    }
    (quad == 0).then_some(out)
}

/// Whether `bytes.decode('utf-8', 'surrogatepass')` succeeds: UTF-8, where an encoded
/// surrogate (ED A0..BF 80..BF) passes too.
fn utf8_surrogatepass(mut b: &[u8]) -> bool {
    loop {
        match std::str::from_utf8(b) {
            Ok(_) => return true,
            Err(e) => {
                let rest = &b[e.valid_up_to()..];
                match rest {
                    [0xed, 0xa0..=0xbf, c, ..] if c & 0xc0 == 0x80 => b = &rest[3..],
                    _ => return false,
                }
            }
        }
    }
}

/// Nesting that Python's json takes whatever the stack (its recursion limit is 1000 frames
/// for the stack and the nesting together); deeper, Python is asked.
const JSON_DEPTH: usize = 200;
/// `sys.int_max_str_digits`'s default: json.loads raises ValueError for a longer integer.
const INT_MAX_STR_DIGITS: usize = 4300;

/// Whether Python's `json.loads` (its C scanner, strict) takes this UTF-8 text, and its value
/// is an object with the key "alg" or "typ"; None when it nests deeper than JSON_DEPTH.
/// Python's grammar is JSON's, and NaN, Infinity and -Infinity; a string takes any character
/// from U+0020 (a lone surrogate too); an integer has at most 4300 digits.
fn json_header(b: &[u8]) -> Option<bool> {
    let mut p = Json { b, i: 0 };
    let mut stack: Vec<u8> = Vec::new(); // the open containers: b'{' or b'['
    let mut key = Vec::new();
    let mut found = false;
    p.ws();
    let object = p.peek() == Some(b'{');
    'value: loop {
        p.ws();
        match p.peek() {
            Some(open @ (b'{' | b'[')) => {
                p.i += 1;
                p.ws();
                let close = if open == b'{' { b'}' } else { b']' };
                if p.peek() == Some(close) {
                    p.i += 1;
                } else {
                    if stack.len() >= JSON_DEPTH {
                        return None;
                    }
                    stack.push(open);
                    if open == b'{' {
                        if !p.member(&mut key) {
                            return Some(false);
                        }
                        found |= stack.len() == 1 && (key == b"alg" || key == b"typ");
                    }
                    continue 'value;
                }
            }
            Some(b'"') => {
                p.i += 1;
                if !p.string(&mut key) {
                    return Some(false);
                }
            }
            _ => {
                if !p.scalar() {
                    return Some(false);
                }
            }
        }
        // a value ends: close what it closes, or go on to the next member or item
        while let Some(&open) = stack.last() {
            p.ws();
            let close = if open == b'{' { b'}' } else { b']' };
            match p.peek() {
                Some(c) if c == close => {
                    p.i += 1;
                    stack.pop();
                }
                Some(b',') => {
                    p.i += 1;
                    if open == b'{' {
                        p.ws();
                        if !p.member(&mut key) {
                            return Some(false);
                        }
                        found |= stack.len() == 1 && (key == b"alg" || key == b"typ");
                    }
                    continue 'value;
                }
                _ => return Some(false),
            }
        }
        break;
    }
    p.ws();
    Some(p.i == b.len() && object && found)
}

struct Json<'a> {
    b: &'a [u8],
    i: usize,
}

impl Json<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, literal: &[u8]) -> bool {
        let ok = self.b[self.i..].starts_with(literal);
        if ok {
            self.i += literal.len();
        }
        ok
    }

    /// `"key"` `:` and the whitespace after, the key decoded into `key` (a character beyond
    /// ASCII as 0xff: no key looked for has one).
    fn member(&mut self, key: &mut Vec<u8>) -> bool {
        if !self.eat(b"\"") || !self.string(key) {
            return false;
        }
        self.ws();
        self.eat(b":")
    }

    /// The rest of a string after its opening quote.
    fn string(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        loop {
            let Some(c) = self.peek() else { return false };
            self.i += 1;
            match c {
                b'"' => return true,
                0x00..=0x1f => return false,
                b'\\' => {
                    let Some(e) = self.peek() else { return false };
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4);
                            let Some(code) = hex
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .filter(|h| h.bytes().all(|d| d.is_ascii_hexdigit()))
                                .and_then(|h| u16::from_str_radix(h, 16).ok())
                            else {
                                return false;
                            };
                            self.i += 4;
                            out.push(if code < 0x80 { code as u8 } else { 0xff });
                        }
                        _ => return false,
                    }
                }
                _ => out.push(c),
            }
        }
    }

    /// A constant or a number (`_match_number_unicode`).
    fn scalar(&mut self) -> bool {
        for literal in [&b"null"[..], b"true", b"false", b"NaN", b"Infinity", b"-Infinity"] {
            if self.eat(literal) {
                return true;
            }
        }
        let start = self.i;
        self.eat(b"-");
        let digits_from = self.i;
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return false,
        }
        let int_digits = self.i - digits_from;
        let mut float = false;
        if self.peek() == Some(b'.') && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
            self.digits();
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let e = self.i;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let before = self.i;
            self.digits();
            if self.i == before {
                self.i = e; // no exponent after all: the number ends before the 'e'
            } else {
                float = true;
            }
        }
        debug_assert!(self.i > start);
        float || int_digits <= INT_MAX_STR_DIGITS
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }
}

// A PEM private key, whole or cut short, with real or JSON-escaped (\n) line breaks.
static PEM: LazyLock<Regex> = LazyLock::new(|| {
    let label = |edge: &str| format!(r"-----{edge}[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----");
    let body = r"(?:[A-Za-z0-9+/=:,.\s-]|\\[nr])*";
    compile(&format!(r"\A{}(?:{body}?{}|{body})", label("BEGIN"), label("END")))
});

fn private_keys(text: &Text, _checks: &dyn Checks) -> Vec<Finding> {
    let s = text.bytes();
    let mut found = Vec::new();
    let mut at = find(s, b"-----BEGIN");
    while let Some(start) = at {
        let matched = PEM.find(&s[start..]).map_or(0, |m| m.end());
        let body =
            s[start..start + matched].iter().rposition(|&b| !py_space(b)).map_or(0, |i| i + 1);
        if body > 0 {
            let end = start + body;
            found.push(Finding::new(start, end, "private_key", &text.text[start..end]));
        }
        let from = start + body.max(1);
        at = find(&s[from..], b"-----BEGIN").map(|i| from + i);
    }
    found
}

/// `Bearer <token>` and `Basic <base64 of user:password>` (with or without a colon after the
/// scheme): the scheme goes with the token, as in the header's value.
fn auth_headers(text: &Text, checks: &dyn Checks) -> Vec<Finding> {
    let (s, lower) = (text.bytes(), text.lower());
    let mut found = Vec::new();
    let bearer = positions(lower, "bearer", 0);
    if bearer.iter().any(|&i| whole_word(lower.as_bytes(), i, 6)) {
        for at in bearer {
            if let Some((token, end)) = scheme_token(s, at, 6, bearer_byte, 8) {
                // `=*` after the token's characters
                let end = end + run_len(s, end, |b| b == b'=');
                let token = &text.text[token..end];
                if token.len() >= 24 || mixed(token) {
                    found.push(Finding::new(at, end, "bearer", token));
                }
            }
        }
    }
    let basic = positions(lower, "basic", 0);
    if basic.iter().any(|&i| whole_word(lower.as_bytes(), i, 5)) {
        for at in basic {
            if let Some((token, end)) = scheme_token(s, at, 5, base64_byte, 6) {
                // `={0,2}(?![\w+/=])`: giving back an '=' or a character leaves one of them
                let end = end + run_len(s, end, |b| b == b'=').min(2);
                let next = s.get(end).copied();
                if next.is_some_and(|b| base64_byte(b) || b == b'_' || b == b'=') {
                    continue;
                }
                let token = &text.text[token..end];
                if user_password(token, checks) {
                    found.push(Finding::new(at, end, "basic_auth", token));
                }
            }
        }
    }
    found
}

fn bearer_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

fn base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// `(?<![\w-])<scheme>\s*:?\s*<class>{min,}` at `at` (the scheme's letters found in the
/// lower-case text): (start, end) of the class's characters.
fn scheme_token(
    s: &[u8],
    at: usize,
    scheme: usize,
    class: fn(u8) -> bool,
    min: usize,
) -> Option<(usize, usize)> {
    if at > 0 && key_byte(s[at - 1]) {
        return None;
    }
    let mut i = at + scheme;
    i += run_len(s, i, py_space);
    if s.get(i) == Some(&b':') {
        i += 1;
    }
    i += run_len(s, i, py_space);
    let n = run_len(s, i, class);
    (n >= min).then_some((i, i + n))
}

/// `_user_password`: the token decodes (base64, strictly) to printable text with a ':'.
fn user_password(token: &str, checks: &dyn Checks) -> bool {
    let data = token.trim_end_matches('=').len();
    if data.is_multiple_of(4) && data < token.len() {
        // "abcdefgh=": padding after a whole quad passes before Python 3.13, not since
        return checks.valid("basic_auth", token);
    }
    let mut padded = token.as_bytes().to_vec();
    padded.resize(token.len().next_multiple_of(4), b'=');
    let Some(decoded) = a2b_base64(&padded, true) else { return false };
    if decoded.is_ascii() {
        return decoded.contains(&b':') && decoded.iter().all(|b| (0x20..0x7f).contains(b));
    }
    // str.isprintable beyond ASCII is Unicode's to say (and Python's version of it)
    std::str::from_utf8(&decoded).is_ok_and(|d| d.contains(':'))
        && checks.valid("basic_auth", token)
}

const SECRET_WORDS: [&str; 11] = [
    "secret",
    "token",
    "password",
    "passwd",
    "api key",
    "apikey",
    "api_key",
    "credential",
    "private key",
    "access key",
    "auth",
];
const GENERIC_MIN: usize = 20;

/// A long random string that a word like "secret" or "token" stands just before.
fn introduced_secrets(text: &Text, _checks: &dyn Checks) -> Vec<Finding> {
    let mut found = Vec::new();
    for &(start, end) in text.token_runs() {
        let raw = &text.text[start..end];
        let run = raw.trim_matches(|c| ".-=/+".contains(c));
        if run.len() < GENERIC_MIN || !mentions(&text.before(start, 32), &SECRET_WORDS) {
            continue;
        }
        if looks_random(run)
            && entropy(run) >= 3.5
            && !run.starts_with("http")
            && !run.starts_with("www.")
        {
            // the first occurrence of the stripped run is where stripping left it
            let first = start + (raw.len() - raw.trim_start_matches(|c| ".-=/+".contains(c)).len());
            found.push(Finding::new(first, first + run.len(), "api_key", run));
        }
    }
    found
}
