//! IP addresses: IPv4 outside version-like contexts, IPv6 in every written form, each
//! candidate checked as Python's `ipaddress` module checks it (ported from
//! agent/sidecar/redaction/network.py; held to it by tests/test_native_redaction.py).

use super::Detect;
use super::text::{Checks, Finding, Text, mentions, word_byte};

pub const DETECTORS: &[(&str, Detect)] = &[("ipv4", ipv4), ("ipv6", ipv6)];

const VERSION_WORDS: &[&str] = &[
    "version", "release", "ver ", "ver.", "build", "rev ", "tag ", "firmware", "python", "node",
    "oid", "snmp", "mib", "upgrade", "update", "patch", "kernel", "driver", "sdk", "==", ">=",
    "<=", "~=", "bump", "install",
];

/// Each dotted quad in a run of digits with three dots, unless a version word stands before.
fn ipv4(text: &Text, _checks: &dyn Checks) -> Vec<Finding> {
    let s = text.bytes();
    let shape = text.shape();
    let mut found = Vec::new();
    for (start, end, _) in text.clusters(4) {
        if shape[start..end].iter().filter(|&&b| b == b'.').count() < 3 {
            continue;
        }
        let endpos = s.len().min(end + 2);
        let mut at = start;
        while at < endpos {
            match quad_at(s, at, endpos) {
                Some(stop) => {
                    if !mentions(&text.before(at, 16), VERSION_WORDS) {
                        found.push(Finding::new(at, stop, "ip", &text.text[at..stop]));
                    }
                    at = stop;
                }
                None => at += 1,
            }
        }
    }
    found
}

/// The end of the `_IPV4` match at `at` (the text ending at `endpos`): four octets of 1-3
/// digits without a leading zero, at most 255, standing free (no word or '.' before, no word
/// character, '-' or ".digit" after).
fn quad_at(s: &[u8], at: usize, endpos: usize) -> Option<usize> {
    if at > 0 && (word_byte(s[at - 1]) || s[at - 1] == b'.') {
        return None;
    }
    let mut i = at;
    for n in 0..4 {
        let digits = s[i..endpos].iter().take_while(|b| b.is_ascii_digit()).count();
        if !octet(&s[i..i + digits]) {
            return None;
        }
        i += digits;
        if n < 3 {
            if i == endpos || s[i] != b'.' {
                return None;
            }
            i += 1;
        }
    }
    let digit_after = |j: usize| j < endpos && s[j].is_ascii_digit();
    if i < endpos && (word_byte(s[i]) || s[i] == b'-' || (s[i] == b'.' && digit_after(i + 1))) {
        return None;
    }
    Some(i)
}

/// An octet as `25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d` takes a whole run of digits.
fn octet(digits: &[u8]) -> bool {
    match digits {
        [_] => true,
        [a, _] => *a != b'0',
        [a, b, c] => *a == b'1' || (*a == b'2' && (*b < b'5' || (*b == b'5' && *c <= b'5'))),
        _ => false,
    }
}

/// `[0-9A-Fa-f:]`: what an IPv6 address is written with, short of a dotted quad.
fn hex_or_colon(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':'
}

/// Each run of hex digits and colons around a `:hex:` pair that `ipaddress` takes.
fn ipv6(text: &Text, _checks: &dyn Checks) -> Vec<Finding> {
    let s = text.bytes();
    let mut found = Vec::new();
    let mut pos = 0;
    while let Some((pair_start, pair_end)) = pair(s, pos) {
        let floor = pair_start.saturating_sub(40);
        let start = pair_start
            - s[floor..pair_start].iter().rev().take_while(|&&b| hex_or_colon(b)).count();
        let end = right_end(s, pair_start);
        pos = end.max(pair_end);
        // "IPv6:2001:db8::1": the hex before the first colon may belong to a word
        if let Some(address) = address(s, start, end).or_else(|| address(s, pair_start + 1, end)) {
            found.push(address);
        }
    }
    found
}

/// The next `:[0-9A-Fa-f]{0,4}:` from `pos` on.
fn pair(s: &[u8], pos: usize) -> Option<(usize, usize)> {
    (pos..s.len()).filter(|&i| s[i] == b':').find_map(|i| {
        let hex = s[i + 1..].iter().take_while(|b| b.is_ascii_hexdigit()).count();
        (hex <= 4 && s.get(i + 1 + hex) == Some(&b':')).then_some((i, i + hex + 2))
    })
}

/// The end of `_IPV6_RIGHT` at `at`: hex groups, maybe ending in `:` and a dotted quad.
fn right_end(s: &[u8], at: usize) -> usize {
    let run_end = at + s[at..].iter().take_while(|&&b| hex_or_colon(b)).count();
    (at..run_end)
        .rev()
        .filter(|&k| s[k] == b':')
        .find_map(|k| dotted_tail(s, k + 1))
        .unwrap_or(run_end)
}

/// The end of `(?:\d{1,3}\.){3}\d{1,3}(?![\d.])` at `at`.
fn dotted_tail(s: &[u8], at: usize) -> Option<usize> {
    let mut i = at;
    for n in 0..4 {
        let digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=3).contains(&digits) {
            return None;
        }
        i += digits;
        if n < 3 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    (s.get(i) != Some(&b'.')).then_some(i)
}

/// `s[start..end]` as an address (without trailing ':' unless it ends in "::"), when it
/// stands free and is neither a time, a MAC address nor a slice.
fn address(s: &[u8], start: usize, end: usize) -> Option<Finding> {
    let raw = &s[start..end];
    let candidate = if raw.ends_with(b"::") {
        raw
    } else {
        &raw[..raw.len() - raw.iter().rev().take_while(|&&b| b == b':').count()]
    };
    let end = start + candidate.len();
    if (start > 0 && (word_byte(s[start - 1]) || s[start - 1] == b'.'))
        || (end < s.len() && word_byte(s[end]))
    {
        return None;
    }
    let groups: Vec<&[u8]> = candidate.split(|&b| b == b':').filter(|g| !g.is_empty()).collect();
    let elided = candidate.windows(2).any(|w| w == b"::");
    if !elided && groups.len() != 8 && !(candidate.contains(&b'.') && groups.len() == 7) {
        return None;
    }
    if candidate != b"::1" && !groups.iter().any(|g| g.len() >= 2) {
        return None;
    }
    let compressed = compressed(&parse_ipv6(candidate)?);
    let zone = if s.get(end) == Some(&b'%') {
        s[end + 1..].iter().take_while(|&&b| word_byte(b) || b == b'.' || b == b'-').count()
    } else {
        0
    };
    let stop = if zone > 0 { end + 1 + zone } else { end }; // fe80::1%eth0
    Some(Finding::new(start, stop, "ip", compressed))
}

/// The eight hextets of an address, as `ipaddress.IPv6Address` parses it, or None where it
/// raises.
fn parse_ipv6(text: &[u8]) -> Option<[u16; 8]> {
    let mut parts: Vec<Vec<u8>> = text.split(|&b| b == b':').map(<[u8]>::to_vec).collect();
    if parts.len() < 3 {
        return None;
    }
    if parts.last()?.contains(&b'.') {
        let v4 = parse_ipv4(&parts.pop()?)?;
        parts.push(format!("{:x}", v4 >> 16).into_bytes());
        parts.push(format!("{:x}", v4 & 0xffff).into_bytes());
    }
    if parts.len() > 9 {
        return None;
    }
    let n = parts.len();
    let mut skip = None;
    for (i, part) in parts.iter().enumerate().take(n - 1).skip(1) {
        if part.is_empty() {
            if skip.is_some() {
                return None; // at most one "::"
            }
            skip = Some(i);
        }
    }
    let (hi, lo) = match skip {
        Some(i) => {
            let (mut hi, mut lo) = (i, n - i - 1);
            if parts[0].is_empty() {
                hi -= 1;
                if hi > 0 {
                    return None;
                }
            }
            if parts[n - 1].is_empty() {
                lo -= 1;
                if lo > 0 {
                    return None;
                }
            }
            if hi + lo > 7 {
                return None;
            }
            (hi, lo)
        }
        None if n != 8 || parts[0].is_empty() || parts[n - 1].is_empty() => return None,
        None => (8, 0),
    };
    let mut hextets = [0u16; 8];
    for i in 0..hi {
        hextets[i] = hextet(&parts[i])?;
    }
    for j in 0..lo {
        hextets[8 - lo + j] = hextet(&parts[n - lo + j])?;
    }
    Some(hextets)
}

/// `_parse_hextet`: one to four hex digits.
fn hextet(part: &[u8]) -> Option<u16> {
    if part.is_empty() || part.len() > 4 || !part.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(part).ok()?, 16).ok()
}

/// `IPv4Address`: four decimal octets, no leading zeros, each at most 255.
fn parse_ipv4(text: &[u8]) -> Option<u32> {
    let octets: Vec<&[u8]> = text.split(|&b| b == b'.').collect();
    if octets.len() != 4 {
        return None;
    }
    octets.iter().try_fold(0u32, |acc, o| {
        let valid = !o.is_empty()
            && o.len() <= 3
            && o.iter().all(u8::is_ascii_digit)
            && (o.len() == 1 || o[0] != b'0');
        let value = o.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
        (valid && value <= 255).then_some(acc << 8 | value)
    })
}

/// `IPv6Address.compressed`: the first longest run of two or more zero hextets becomes "::";
/// an IPv4-mapped address is printed in hex like any other.
fn compressed(hextets: &[u16; 8]) -> String {
    let (mut best_start, mut best_len, mut run) = (0, 0, 0);
    for (i, &h) in hextets.iter().enumerate() {
        run = if h == 0 { run + 1 } else { 0 };
        if run > best_len {
            best_len = run;
            best_start = i + 1 - run;
        }
    }
    let hex = |hs: &[u16]| hs.iter().map(|h| format!("{h:x}")).collect::<Vec<_>>().join(":");
    if best_len < 2 {
        return hex(hextets);
    }
    let end = best_start + best_len;
    format!("{}::{}", hex(&hextets[..best_start]), hex(&hextets[end..]))
}
