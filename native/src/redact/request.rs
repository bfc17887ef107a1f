//! Which values of an OTLP request redaction changes, as agent/sidecar/redaction/otlp.py walks
//! them: every string value of span attributes, span events' attributes, log records'
//! attributes and bodies (arrays element by element, a key-value list with its keys naming
//! secrets), but the skipped attribute keys. A value found clean is left alone; a string
//! value comes back masked where that is all its policy does (values.rs); the others are
//! named for the Python walk.

use super::passwords::{kind_of_key, secret_value};
use super::scanner::Scanner;
use super::text::{Checks, plain_ascii};
use super::values::{Counts, Verdict, redact};
use super::wire::{Any, any_value, key_value, repeated, single};

/// A changed value: its masked text and the count per type, or None for the Python walk.
pub type Change = Option<(String, Counts)>;

/// A span or log record with values to change: (resource, scope, item) indexes, its
/// attributes (index, change), its events' attributes (event, index, change), its log body
/// (a 1-tuple, so that Python tells "unchanged" from "for the Python walk").
pub type Target =
    ((usize, usize, usize), Vec<(usize, Change)>, Vec<(usize, usize, Change)>, Option<(Change,)>);

pub struct Walk<'a> {
    pub scanner: &'a Scanner,
    pub checks: &'a dyn Checks,
    pub skip: &'a [String],
    /// Whether every finding is masked (no policy, the default action): then string values
    /// are masked here.
    pub mask: bool,
}

// Field numbers of the OTLP messages walked (opentelemetry-proto, common/trace/logs v1).
const RESOURCE_ITEMS: u32 = 1; // Export*ServiceRequest.resource_spans / resource_logs
const SCOPE_ITEMS: u32 = 2; // ResourceSpans.scope_spans / ResourceLogs.scope_logs
const ITEMS: u32 = 2; // ScopeSpans.spans / ScopeLogs.log_records
const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_EVENTS: u32 = 11;
const EVENT_ATTRIBUTES: u32 = 3;
const LOG_BODY: u32 = 5;
const LOG_ATTRIBUTES: u32 = 6;
const VALUES: u32 = 1; // ArrayValue.values, KeyValueList.values

impl Walk<'_> {
    /// The spans of an encoded trace request with values to change; None when it does not
    /// read.
    pub fn traces(&self, body: &[u8]) -> Option<Vec<Target>> {
        self.items(body, |span, at| {
            let attributes = self.attributes(span, SPAN_ATTRIBUTES)?;
            let mut events = Vec::new();
            for (e, event) in repeated(span, SPAN_EVENTS)?.into_iter().enumerate() {
                events.extend(
                    self.attributes(event, EVENT_ATTRIBUTES)?.into_iter().map(|(a, c)| (e, a, c)),
                );
            }
            Some(
                (!attributes.is_empty() || !events.is_empty())
                    .then_some((at, attributes, events, None)),
            )
        })
    }

    /// The log records of an encoded logs request with values to change.
    pub fn logs(&self, body: &[u8]) -> Option<Vec<Target>> {
        self.items(body, |record, at| {
            let attributes = self.attributes(record, LOG_ATTRIBUTES)?;
            let body = match single(record, LOG_BODY)? {
                Some(value) => self.value(value)?,
                None => None,
            };
            Some((!attributes.is_empty() || body.is_some()).then_some((
                at,
                attributes,
                Vec::new(),
                body.map(|c| (c,)),
            )))
        })
    }

    /// Each item (span, log record) of each scope of each resource, with its indexes.
    fn items(
        &self,
        body: &[u8],
        item: impl Fn(&[u8], (usize, usize, usize)) -> Option<Option<Target>>,
    ) -> Option<Vec<Target>> {
        let mut out = Vec::new();
        for (r, resource) in repeated(body, RESOURCE_ITEMS)?.into_iter().enumerate() {
            for (s, scope) in repeated(resource, SCOPE_ITEMS)?.into_iter().enumerate() {
                for (i, encoded) in repeated(scope, ITEMS)?.into_iter().enumerate() {
                    out.extend(item(encoded, (r, s, i))?);
                }
            }
        }
        Some(out)
    }

    /// The attributes (field `number` of the message) with a change, by index.
    fn attributes(&self, message: &[u8], number: u32) -> Option<Vec<(usize, Change)>> {
        let mut out = Vec::new();
        for (a, kv) in repeated(message, number)?.into_iter().enumerate() {
            let (key, value) = key_value(kv)?;
            if self.skip.iter().any(|k| k == key) {
                continue;
            }
            if let Some(value) = value
                && let Some(change) = self.value(value)?
            {
                out.push((a, change));
            }
        }
        Some(out)
    }

    /// otlp.py `_value` on one encoded value: Some(None) when it stays as it is.
    fn value(&self, value: &[u8]) -> Option<Option<Change>> {
        Some(match any_value(value)? {
            Any::Str(text) => match redact(self.scanner, self.checks, text, "", self.mask) {
                Verdict::Clean => None,
                Verdict::Masked(text, counts) => Some(Some((text, counts))),
                Verdict::Python => Some(None),
            },
            Any::Array(_) | Any::List(_) => (!self.clean(value, None)?).then_some(None),
            Any::Other => None,
        })
    }

    /// Whether a value (inside an array or a key-value list: its key's secret kind) stays as
    /// it is.
    fn clean(&self, value: &[u8], secret_kind: Option<&str>) -> Option<bool> {
        Some(match any_value(value)? {
            Any::Str(text) => {
                plain_ascii(text)
                    && !secret_kind.is_some_and(|kind| secret_value(kind, text))
                    && matches!(redact(self.scanner, self.checks, text, "", false), Verdict::Clean)
            }
            Any::Array(array) => {
                for v in repeated(array, VALUES)? {
                    if !self.clean(v, None)? {
                        return Some(false);
                    }
                }
                true
            }
            Any::List(list) => {
                for kv in repeated(list, VALUES)? {
                    let (key, v) = key_value(kv)?;
                    if let Some(v) = v
                        && !self.clean(v, kind_of_key(key))?
                    {
                        return Some(false);
                    }
                }
                true
            }
            Any::Other => true,
        })
    }
}
