//! The compiled detectors of one redaction config, each behind the gate of its Python twin
//! (scanner.py's `Detector`: digits in one free run, a run of key characters, one of some
//! marks), and only the kinds the config enables.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::Detect;
use super::text::{Checks, Finding, Text, plain_ascii};

pub struct Gate {
    pub digits: usize,
    pub token_run: bool,
    pub marks: Vec<String>,
}

/// Findings by (value, context), up to MEMO_BYTES of values; then it starts over. Short
/// values recur (model names, roles, keys, ids); where policies apply, a value that holds
/// something is scanned again by the Python walk that redacts it. A long value (a prompt)
/// rarely comes again, and keeping it costs more than it saves.
#[derive(Default)]
struct Memo {
    found: HashMap<(String, String), Vec<Finding>>,
    bytes: usize,
}

const MEMO_BYTES: usize = 1 << 20;
const MEMO_SHORT: usize = 256; // longer values are remembered only when they hold something
const MEMO_LONGEST: usize = 16 * 1024;

pub struct Scanner {
    detectors: Vec<(Detect, Gate)>,
    kinds: HashSet<String>,
    /// Where findings overlap, the kind ranked first wins (scanner.py's `_rank`).
    ranks: HashMap<String, usize>,
    memo: Mutex<Memo>,
    /// Whether long values that hold something are remembered (for the Python walk).
    rescanned: bool,
}

impl Scanner {
    /// `ranked`: every enabled kind, the one that wins an overlap first; `rescanned`:
    /// whether the Python walk scans values that hold something again (policies apply).
    pub fn new(detectors: Vec<(Detect, Gate)>, ranked: Vec<String>, rescanned: bool) -> Self {
        let ranks = ranked.iter().enumerate().map(|(i, k)| (k.clone(), i)).collect();
        let kinds = ranked.into_iter().collect();
        Scanner { detectors, kinds, ranks, memo: Mutex::default(), rescanned }
    }

    /// scanner.py's `Scanner.scan`: the findings in text order, none overlapping another.
    pub fn settled(&self, text: &str, context: &str, checks: &dyn Checks) -> Option<Vec<Finding>> {
        let mut found = self.scan(text, context, checks)?;
        if found.len() < 2 {
            return Some(found);
        }
        let rank = |f: &Finding| self.ranks.get(&f.kind).copied().unwrap_or(usize::MAX);
        found.sort_by_key(|f| (rank(f), f.start as isize - f.end as isize, f.start));
        // scanner.py `without_overlaps`: the kept ones are disjoint, so in (start, end) order
        // their ends never decrease, and only the last that starts before a finding ends can
        // overlap it
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut kept: Vec<Finding> = Vec::new();
        for f in found {
            let before = spans.partition_point(|&(start, _)| start < f.end);
            if before > 0 && spans[before - 1].1 > f.start {
                continue;
            }
            let at = spans.partition_point(|&span| span < (f.start, f.end));
            spans.insert(at, (f.start, f.end));
            kept.push(f);
        }
        kept.sort_by_key(|f| f.start);
        Some(kept)
    }

    /// Every finding of an enabled kind, in detector order; None when the text or its context
    /// is not plain ASCII (the Python detectors take it).
    pub fn scan(&self, text: &str, context: &str, checks: &dyn Checks) -> Option<Vec<Finding>> {
        if !plain_ascii(text) || !plain_ascii(context) {
            return None;
        }
        let short = text.len() <= MEMO_SHORT;
        if !short && !self.rescanned {
            return Some(self.detect(text, context, checks)); // never remembered: not looked up
        }
        let key = (text.to_string(), context.to_string());
        if let Some(found) = self.memo.lock().ok()?.found.get(&key) {
            return Some(found.clone());
        }
        let found = self.detect(text, context, checks);
        if (short || (!found.is_empty() && text.len() <= MEMO_LONGEST))
            && let Ok(mut memo) = self.memo.lock()
        {
            if memo.bytes + text.len() > MEMO_BYTES {
                *memo = Memo::default();
            }
            memo.bytes += text.len() + context.len();
            memo.found.insert(key, found.clone());
        }
        Some(found)
    }

    fn detect(&self, text: &str, context: &str, checks: &dyn Checks) -> Vec<Finding> {
        let t = Text::new(text, context);
        let (digits, token_run) = (t.most_digits(), !t.token_runs().is_empty());
        let mut found = Vec::new();
        for (detect, gate) in &self.detectors {
            if digits >= gate.digits
                && (token_run || !gate.token_run)
                && (gate.marks.is_empty() || gate.marks.iter().any(|m| text.contains(m.as_str())))
            {
                found.extend(
                    detect(&t, checks).into_iter().filter(|f| self.kinds.contains(&f.kind)),
                );
            }
        }
        found
    }
}
