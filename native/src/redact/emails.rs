//! E-mail addresses: plain, quoted local parts, URL-encoded (%40), and obfuscated forms
//! ("jane [at] example [dot] com", "jane.doe at example.com", "arobase" and "point" and their
//! kin) (ported from agent/sidecar/redaction/emails.py; held to it by
//! tests/test_native_redaction.py). On ASCII text the patterns' Unicode letters and combining
//! marks are the ASCII letters and digits.

use super::Detect;
use super::text::{Checks, Finding, Text, word_byte};

pub const DETECTORS: &[(&str, Detect)] =
    &[("emails", emails), ("obfuscated_emails", obfuscated_emails)];

const AT_SIGNS: [&str; 2] = ["@", "%40"];
/// Markup before a name: **jane@x.org**, 'jane@x.org'.
const LEADING: &[u8] = b".*'`=/|~{}#!$%&^?+-";
const SPELLED_AT: [&str; 4] = ["at", "arobase", "arroba", "chiocciola"];
const SPELLED_DOTS: [&str; 5] = ["dot", "point", "punto", "punkt", "ponto"];
const BRACKETED_AT: [&str; 7] = ["[at]", "(at)", "{at}", "<at>", "[@]", "(@)", "@"];
const BRACKETED_DOT: [&str; 6] = ["[dot]", "(dot)", "{dot}", "<dot>", "[.]", "(.)"];
const PLAIN_WORDS: [&str; 19] = [
    "the", "a", "an", "this", "that", "my", "your", "our", "their", "his", "her", "its", "home",
    "work", "least", "all", "once", "last", "first",
];

/// Each address at an '@' or a '%40', a found one's end being where the next is looked for.
fn emails(text: &Text, _checks: &dyn Checks) -> Vec<Finding> {
    let mut found = Vec::new();
    for sign in AT_SIGNS {
        let mut from = 0;
        while let Some(at) = text.text[from..].find(sign).map(|i| from + i) {
            let email = if at > 0 { email_at(text.text, at, sign.len()) } else { None };
            from = email.as_ref().map_or(at + 1, |e| e.end);
            found.extend(email);
        }
    }
    found
}

/// The address around the sign at `at`, unless it is a file name or an ssh remote.
fn email_at(text: &str, at: usize, sign: usize) -> Option<Finding> {
    let s = text.as_bytes();
    let domain_start = at + sign;
    let end = domain_end(s, domain_start)?;
    let domain = &text[domain_start..end];
    if retina(domain.as_bytes()) {
        return None;
    }
    if s.get(end) == Some(&b':')
        && s.get(end + 1).is_some_and(|&b| word_byte(b) || b == b'~' || b == b'/')
    {
        return None; // git@github.com:org/repo.git, an ssh remote
    }
    let start = local_before(s, at)?;
    Some(Finding::new(start, end, "email", format!("{}@{domain}", &text[start..at]).to_lowercase()))
}

/// `icon@2x.png` is a file name: `\d(?:\.\d)?x\.` at the start of the domain.
fn retina(domain: &[u8]) -> bool {
    let is = |i: usize, f: fn(&u8) -> bool| domain.get(i).is_some_and(f);
    let x = |b: &u8| b.eq_ignore_ascii_case(&b'x');
    let dot = |b: &u8| *b == b'.';
    is(0, u8::is_ascii_digit)
        && ((is(1, x) && is(2, dot))
            || (is(1, dot) && is(2, u8::is_ascii_digit) && is(3, x) && is(4, dot)))
}

/// The start of the local part before the '@' at `at`: a quoted one, or the run of address
/// characters (matched backwards, so that only the few '@' of a text start a match) without
/// the markup before it.
fn local_before(s: &[u8], at: usize) -> Option<usize> {
    if s[at - 1] == b'"' {
        let open = s[..at - 1].iter().rposition(|&b| b == b'"');
        if let Some(open) = open {
            let quoted = &s[open + 1..at - 1];
            if (1..=62).contains(&quoted.len()) && !quoted.iter().any(|b| b"\\\r\n".contains(b)) {
                return Some(open);
            }
        }
    }
    if !local_byte(s[at - 1]) {
        return None;
    }
    let floor = at.saturating_sub(64);
    let mut start = at - 1;
    while start > floor && (local_byte(s[start - 1]) || s[start - 1] == b'.') {
        start -= 1;
    }
    start += s[start..at].iter().take_while(|b| LEADING.contains(b)).count();
    (start < at).then_some(start)
}

/// A character of an unquoted local part other than '.'.
fn local_byte(b: u8) -> bool {
    word_byte(b) || b"!#$%&'*+/=?^`{|}~-".contains(&b)
}

/// `[\w-]`: what labels are made of.
fn label_byte(b: u8) -> bool {
    word_byte(b) || b == b'-'
}

/// The end of the run of `[\w-]` at `at`: a label or a top-level domain must be all of it.
fn run_end(s: &[u8], at: usize) -> usize {
    at + s[at..].iter().take_while(|&&b| label_byte(b)).count()
}

/// A domain label: letters, digits, '_' and '-', at most 63, a letter or digit at each end.
fn is_label(run: &[u8]) -> bool {
    (1..=63).contains(&run.len())
        && run[0].is_ascii_alphanumeric()
        && run[run.len() - 1].is_ascii_alphanumeric()
}

/// A top-level domain: 2 to 63 letters, or an IDN's `xn--` form.
fn is_tld(run: &[u8]) -> bool {
    if (2..=63).contains(&run.len()) && run.iter().all(u8::is_ascii_alphabetic) {
        return true;
    }
    run.len() >= 4
        && run[..4].eq_ignore_ascii_case(b"xn--")
        && (2..=59).contains(&(run.len() - 4))
        && run[4..].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The end of `_DOMAIN` at `at`: labels, each followed by '.', then the last top-level domain
/// that follows one of them.
fn domain_end(s: &[u8], at: usize) -> Option<usize> {
    let mut after_dots = Vec::new();
    let mut pos = at;
    loop {
        let end = run_end(s, pos);
        if !is_label(&s[pos..end]) || s.get(end) != Some(&b'.') {
            break;
        }
        pos = end + 1;
        after_dots.push(pos);
    }
    after_dots
        .into_iter()
        .rev()
        .map(|at| (at, run_end(s, at)))
        .find(|&(at, end)| is_tld(&s[at..end]))
        .map(|(_, end)| end)
}

/// Each address with a bracketed or spelled "at", or an '@' with spaces around it or a "dot"
/// after it; the local part is matched backwards from the "at".
fn obfuscated_emails(text: &Text, _checks: &dyn Checks) -> Vec<Finding> {
    let s = text.bytes();
    let mut found = Vec::new();
    for token in at_tokens(text) {
        let Some(tail) = tail(s, token) else { continue };
        let domain_part = &s[tail.at_end..tail.end];
        if &s[token..tail.at_end] == b"@" && !spelled_dot(domain_part) {
            continue; // a plain address is `emails`'
        }
        let Some((local, local_end)) = local_before_token(s, token) else { continue };
        let local_text = &text.text[local..local_end];
        if tail.spelled
            && !plausible(local_text, &text.text[tail.at_end..tail.domain_end], domain_part)
        {
            continue;
        }
        let address = format!(
            "{local_text}@{}.{}",
            &text.text[tail.at_end..tail.domain_end],
            &text.text[tail.tld_start..tail.end]
        );
        found.push(Finding::new(
            local,
            tail.end,
            "email",
            undotted(address.as_bytes()).to_ascii_lowercase(),
        ));
    }
    found
}

/// Where an "at" may stand: a bracketed "at" or "@", '@', or a spelled "at" (common in prose:
/// only where a dotted word or a spelled "dot" follows); in order, as Python sorts them.
fn at_tokens(text: &Text) -> Vec<usize> {
    let lower = text.lower();
    let s = lower.as_bytes();
    let token = |i: usize, b: u8| match b {
        b'@' => true,
        b'[' | b'(' | b'{' | b'<' => s[i + 1..].starts_with(b"at") || s.get(i + 1) == Some(&b'@'),
        // Python looks at lower[i + len(" word "):i + 68]
        b' ' if matches!(s.get(i + 1), Some(b'a' | b'c')) => SPELLED_AT.iter().any(|word| {
            lower[i + 1..].strip_prefix(word).is_some_and(|after| {
                after.starts_with(' ') && dotted(&after[1..after.len().min(67 - word.len())])
            })
        }),
        _ => false,
    };
    s.iter().enumerate().filter(|&(i, &b)| token(i, b)).map(|(i, _)| i).collect()
}

/// A dotted word or a spelled or bracketed "dot" follows: what an address needs.
fn dotted(after: &str) -> bool {
    after.split(' ').next().is_some_and(|w| w.contains('.'))
        || SPELLED_DOTS.iter().any(|d| after.contains(d))
        || after.contains("[.")
        || after.contains("(.")
}

/// A spelled "dot" or a bracketed '.' (`_SPELLED_DOT`).
fn spelled_dot(part: &[u8]) -> bool {
    let lower = part.to_ascii_lowercase();
    SPELLED_DOTS.iter().any(|d| lower.windows(d.len()).any(|w| w == d.as_bytes()))
        || part.windows(2).any(|w| b"[({<".contains(&w[0]) && w[1] == b'.')
}

/// "look at example.com" is prose: a spelled "at" needs a spelled or bracketed "dot", or a
/// local part that reads like an address (jane.doe, j_doe, jdoe84), and no everyday word
/// where a name would be.
fn plausible(local: &str, domain: &str, domain_part: &[u8]) -> bool {
    if !(spelled_dot(domain_part)
        || local.bytes().any(|b| b == b'.' || b == b'_' || b.is_ascii_digit()))
    {
        return false;
    }
    let plain = |w: &str| PLAIN_WORDS.contains(&w.to_ascii_lowercase().as_str());
    !(plain(local) || domain.split(|c: char| !word_byte(c as u8)).any(plain))
}

/// Python's `\s` on plain ASCII text.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// How many spaces stand at `at`.
fn spaces(s: &[u8], at: usize) -> usize {
    s[at..].iter().take_while(|&&b| is_space(b)).count()
}

/// Which of `words` (case-insensitive) starts at `at`, by its length.
fn word_at(s: &[u8], at: usize, words: &[&str]) -> Option<usize> {
    words
        .iter()
        .find(|w| s.len() >= at + w.len() && s[at..at + w.len()].eq_ignore_ascii_case(w.as_bytes()))
        .map(|w| w.len())
}

/// The end of `_DOT` at `at`: a bracketed dot, a spelled one between spaces, or '.'.
fn dot_end(s: &[u8], at: usize) -> Option<usize> {
    let lead = at + spaces(s, at);
    if let Some(len) = word_at(s, lead, &BRACKETED_DOT) {
        return Some(lead + len + spaces(s, lead + len));
    }
    let spelled = word_at(s, lead, &SPELLED_DOTS).filter(|_| lead > at);
    if let Some(len) = spelled.filter(|&len| spaces(s, lead + len) > 0) {
        return Some(lead + len + spaces(s, lead + len));
    }
    (s.get(at) == Some(&b'.')).then_some(at + 1)
}

/// `_ANY_DOT.sub(".", address)`.
fn undotted(address: &[u8]) -> String {
    let mut out = String::with_capacity(address.len());
    let mut i = 0;
    while i < address.len() {
        match dot_end(address, i) {
            Some(end) => {
                out.push('.');
                i = end;
            }
            None => {
                out.push(char::from(address[i]));
                i += 1;
            }
        }
    }
    out
}

/// A `_TAIL` match: the "at", the domain, a dot, the top-level domain.
struct Tail {
    at_end: usize,
    /// The "at" is a spelled word, not a sign.
    spelled: bool,
    domain_end: usize,
    tld_start: usize,
    end: usize,
}

/// `_TAIL` anchored at `token`.
fn tail(s: &[u8], token: usize) -> Option<Tail> {
    let lead = token + spaces(s, token);
    let (at_end, spelled) = if let Some(len) = word_at(s, lead, &BRACKETED_AT) {
        (lead + len + spaces(s, lead + len), false)
    } else {
        let len = word_at(s, lead, &SPELLED_AT).filter(|_| lead > token)?;
        let trail = spaces(s, lead + len);
        if trail == 0 {
            return None;
        }
        (lead + len + trail, true)
    };
    let mut end = run_end(s, at_end);
    if !is_label(&s[at_end..end]) {
        return None;
    }
    // each (end of a label, start of what follows its dot), the domain taking all it can
    let mut dots = Vec::new();
    while let Some(next) = dot_end(s, end) {
        dots.push((end, next));
        let label_end = run_end(s, next);
        if !is_label(&s[next..label_end]) {
            break;
        }
        end = label_end;
    }
    dots.into_iter().rev().find_map(|(domain_end, tld_start)| {
        let end = run_end(s, tld_start);
        is_tld(&s[tld_start..end]).then_some(Tail { at_end, spelled, domain_end, tld_start, end })
    })
}

/// The local part before `token` (`_LOCAL_BEFORE` searched in the 64 characters before it):
/// the first run of `[\w+-]` not glued to one before it from which runs joined by dots reach
/// the spaces before the token.
fn local_before_token(s: &[u8], token: usize) -> Option<(usize, usize)> {
    let before = &s[..token];
    let end = token - before.iter().rev().take_while(|&&b| is_space(b)).count();
    let start = (token.saturating_sub(64)..end).find(|&i| {
        (i == 0 || !(local_part(s[i - 1]) || s[i - 1] == b'.'))
            && local_part(s[i])
            && runs_reach(before, i, end)
    })?;
    Some((start, end))
}

/// `[\w+-]`: what the words of an obfuscated local part are made of.
fn local_part(b: u8) -> bool {
    word_byte(b) || b == b'+' || b == b'-'
}

/// Whether runs of `[\w+-]` joined by dots lead from `pos` exactly to `end`.
fn runs_reach(s: &[u8], mut pos: usize, end: usize) -> bool {
    loop {
        let run = s[pos..].iter().take_while(|&&b| local_part(b)).count();
        if run == 0 {
            return false;
        }
        pos += run;
        if pos == end {
            return true;
        }
        match dot_end(s, pos) {
            Some(next) => pos = next,
            None => return false,
        }
    }
}
