//! One OTLP span to its `samples` or `spans` row, as a JSON line: the same mapping as
//! collectors/normalise/normaliser.py for the spans it takes on (see `Outcome::Defer`), with the
//! normaliser's own tables (`Rules`, handed over from Python).

use std::borrow::Cow;

use opentelemetry_proto::tonic::trace::v1::Span;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::messages::{self, Message};
use crate::pyjson::{self, Value, get, py_str};
use crate::rules::Rules;

pub struct Options {
    pub hash_user_ids: bool,
    pub user_id_salt: String,
}

pub struct SampleRow {
    pub trace_id: String,
    pub span_id: String,
    pub sample_id: String,
    pub ts_us: i64,
    pub line: String,
    pub row_binary: Vec<u8>,
    /// Whether the span carries its content (the join window need not wait for log records).
    pub has_content: bool,
}

pub enum Outcome {
    Sample(SampleRow),
    Span(String),
    /// Anything but what this path takes on (the compiled shape's content on the span, plain
    /// spans): a marker of another shape, feedback, values whose text only Python can write.
    /// The Python normaliser handles the span.
    Defer,
}

pub struct Ctx<'a> {
    pub resource: &'a [(&'a str, Value<'a>)],
    pub scope: &'a str,
    pub options: &'a Options,
    pub rules: &'a Rules,
}

pub fn span(span: &Span, ctx: &Ctx) -> Outcome {
    convert(span, ctx).unwrap_or(Outcome::Defer)
}

fn convert(span: &Span, ctx: &Ctx) -> Option<Outcome> {
    let attrs = pyjson::attributes(&span.attributes)?;
    let rules = ctx.rules;
    if span.start_time_unix_nano == 0 // stamped on arrival by the Python path
        || rules.defers(span, &attrs)
        || rules.is_feedback(&span.name, &attrs)
    {
        return None;
    }
    if is_llm_call(&attrs, rules)? {
        sample(span, &attrs, ctx).map(Outcome::Sample)
    } else {
        span_record(span, &attrs, ctx).map(Outcome::Span)
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::None => false,
        Value::Str(s) => !s.is_empty(),
        Value::Int(i) => *i != 0,
        Value::Bool(b) => *b,
        Value::Float(f) => *f != 0.0,
        Value::List(items) => !items.is_empty(),
        Value::Dict(items) => !items.is_empty(),
    }
}

/// normaliser.is_llm_call for a span without other shapes' markers: the first truthy operation
/// decides, else a GenAI marker (an operation that is not a string is left to Python).
fn is_llm_call(attrs: &[(&str, Value)], rules: &Rules) -> Option<bool> {
    for key in &rules.aliases.operation {
        match get(attrs, key) {
            Some(Value::Str(op)) if !op.is_empty() => {
                return Some(rules.llm_operations.iter().any(|o| o == op));
            }
            Some(value) if truthy(value) => return None,
            _ => {}
        }
    }
    Some(rules.genai_markers.iter().any(|k| get(attrs, k).is_some()))
}

/// The first value that is neither absent, None nor "" (normaliser._first).
fn first<'a, 'b>(attrs: &'b [(&'a str, Value<'a>)], keys: &[String]) -> Option<&'b Value<'a>> {
    keys.iter().filter_map(|k| get(attrs, k)).find(|v| match v {
        Value::None => false,
        Value::Str(s) => !s.is_empty(),
        _ => true,
    })
}

fn text(value: Option<&Value>) -> Option<String> {
    value.map_or(Some(String::new()), py_str)
}

fn int(value: Option<&Value>) -> Option<Option<i64>> {
    match value {
        None | Some(Value::None) => Some(None),
        Some(Value::Int(i)) => Some(Some(*i)),
        Some(_) => None, // int() of other types: left to Python
    }
}

fn class_name(error_type: &str) -> String {
    let name = error_type
        .strip_prefix("<class '")
        .and_then(|rest| rest.strip_suffix("'>"))
        .unwrap_or(error_type);
    if name.contains(' ') {
        name.to_string()
    } else {
        name.rsplit('.').next().unwrap_or(name).to_string()
    }
}

fn status(span: &Span) -> &'static str {
    // the OTLP status codes, as normaliser._status reduces otlp.STATUS
    match span.status.as_ref().map_or(0, |s| s.code) {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}

fn content(attrs: &[(&str, Value)], key: &str) -> Option<Vec<Message>> {
    match get(attrs, key) {
        None | Some(Value::None) => Some(Vec::new()),
        Some(Value::Str(s)) => messages::messages(s),
        Some(_) => None,
    }
}

fn sample<'a>(span: &'a Span, attrs: &[(&'a str, Value<'a>)], ctx: &Ctx<'a>) -> Option<SampleRow> {
    let rules = ctx.rules;
    let (aliases, resource) = (&rules.aliases, &rules.resource_aliases);
    let shape = &rules.shape;
    let input = content(attrs, &shape.input)?;
    let output = content(attrs, &shape.output)?;
    let mut system = match get(attrs, &shape.system) {
        None | Some(Value::None) => String::new(),
        Some(Value::Str(s)) => messages::instructions(s)?,
        Some(_) => return None,
    };
    let has_content = !(input.is_empty() && output.is_empty() && system.is_empty());
    if system.is_empty() {
        system = messages::joined_text(&input, |m| m.role == "system");
    }
    let finish_reasons: Vec<String> = match first(attrs, &aliases.finish_reasons) {
        None => output
            .iter()
            .filter_map(|m| m.finish_reason.clone())
            .filter(|r| !r.is_empty())
            .collect(),
        Some(Value::Str(s)) => vec![s.to_string()],
        Some(Value::List(items)) => items
            .iter()
            .map(|v| match v {
                Value::Str(s) => Some(s.to_string()),
                _ => None,
            })
            .collect::<Option<_>>()?,
        Some(_) => return None,
    };
    let status = status(span);
    let mut error_type = text(first(attrs, &aliases.error_type))?;
    if status == "error" && error_type.is_empty() {
        if let Some(event) = span.events.iter().find(|e| e.name == rules.exception_event) {
            let event_attrs = pyjson::attributes(&event.attributes)?;
            error_type = text(get(&event_attrs, &rules.exception_type_key))?;
        }
        if error_type.is_empty() {
            error_type = span.status.as_ref().map(|s| s.message.clone()).unwrap_or_default();
        }
    }
    let user_id = text(first(attrs, &aliases.user_id))?;
    let user_id = if user_id.is_empty() || !ctx.options.hash_user_ids {
        user_id
    } else {
        let digest = Sha256::digest(format!("{}:{}", ctx.options.user_id_salt, user_id));
        pyjson::hex(&digest)[..32].to_string()
    };
    let operation = text(first(attrs, &aliases.operation))?;
    let trace_id = pyjson::hex(&span.trace_id);
    let span_id = pyjson::hex(&span.span_id);
    let (ts, ts_us) = timestamp(span.start_time_unix_nano);
    let mut input_messages = String::new();
    messages::write(&input, &mut input_messages);
    let mut output_messages = String::new();
    messages::write(&output, &mut output_messages);
    let fields = SampleFields {
        sample_uuid: sample_id(&rules.sample_namespace, &trace_id, &span_id),
        parent_span_id: pyjson::hex(&span.parent_span_id),
        ts,
        ts_us,
        duration_ms: duration_ms(span),
        status,
        error_type: class_name(&error_type),
        service: text(first(ctx.resource, &resource.service))?,
        environment: text(first(ctx.resource, &resource.environment))?,
        k8s_namespace: text(first(ctx.resource, &resource.k8s_namespace))?,
        k8s_pod: text(first(ctx.resource, &resource.k8s_pod))?,
        provider: text(first(attrs, &aliases.provider))?,
        operation: if operation.is_empty() { rules.default_operation.clone() } else { operation },
        request_model: text(first(attrs, &aliases.request_model))?,
        response_model: text(first(attrs, &aliases.response_model))?,
        input_messages,
        output_messages,
        prompt_text: messages::prompt_text(&input),
        completion_text: messages::joined_text(&output, |_| true),
        system_instructions: system,
        input_tokens: count(int(first(attrs, &aliases.input_tokens))?)?,
        output_tokens: count(int(first(attrs, &aliases.output_tokens))?)?,
        finish_reasons,
        conversation_id: text(first(attrs, &aliases.conversation_id))?,
        user_id,
        attributes: attrs
            .iter()
            .filter(|(k, _)| !(rules.is_metadata(k) || (has_content && shape.has_key(k))))
            .map(|(k, v)| (*k, pyjson::attribute_text(v, rules.max_attribute_chars)))
            .collect(),
        redactions: count(Some(int(get(attrs, &rules.redactions_key))?.unwrap_or(0)))??,
        source: if has_content { &shape.name } else { "" },
        scope: ctx.scope,
        trace_id,
        span_id,
    };
    Some(SampleRow {
        line: fields.json(),
        row_binary: fields.row_binary(),
        sample_id: uuid_text(&fields.sample_uuid),
        trace_id: fields.trace_id,
        span_id: fields.span_id,
        ts_us,
        has_content,
    })
}

/// Token and redaction counts are UInt32 columns: other values are left to the Python path.
fn count(value: Option<i64>) -> Option<Option<u32>> {
    match value {
        None => Some(None),
        Some(n) => u32::try_from(n).ok().map(Some),
    }
}

/// A `samples` row: every column's value, written as a JSON line (the table's row through
/// JSONEachRow and the wk.samples message alike) and as RowBinary (the faster insert).
struct SampleFields<'a> {
    sample_uuid: [u8; 16],
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    ts: String,
    ts_us: i64,
    duration_ms: f64,
    status: &'static str,
    error_type: String,
    service: String,
    environment: String,
    k8s_namespace: String,
    k8s_pod: String,
    provider: String,
    operation: String,
    request_model: String,
    response_model: String,
    input_messages: String,
    output_messages: String,
    system_instructions: String,
    prompt_text: String,
    completion_text: String,
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
    finish_reasons: Vec<String>,
    conversation_id: String,
    user_id: String,
    attributes: Vec<(&'a str, Cow<'a, str>)>,
    redactions: u32,
    source: &'a str,
    scope: &'a str,
}

/// The RowBinary column order (`SampleFields::row_binary`); the Python insert names them.
pub const SAMPLE_COLUMNS: [&str; 30] = [
    "sample_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "ts",
    "duration_ms",
    "status",
    "error_type",
    "service",
    "environment",
    "k8s_namespace",
    "k8s_pod",
    "provider",
    "operation",
    "request_model",
    "response_model",
    "input_messages",
    "output_messages",
    "system_instructions",
    "prompt_text",
    "completion_text",
    "input_tokens",
    "output_tokens",
    "finish_reasons",
    "conversation_id",
    "user_id",
    "attributes",
    "redactions",
    "source",
    "scope",
];

impl SampleFields<'_> {
    /// The short text columns between the timing and the content, in column order.
    fn labels(&self) -> [(&'static str, &str); 10] {
        [
            ("status", self.status),
            ("error_type", &self.error_type),
            ("service", &self.service),
            ("environment", &self.environment),
            ("k8s_namespace", &self.k8s_namespace),
            ("k8s_pod", &self.k8s_pod),
            ("provider", &self.provider),
            ("operation", &self.operation),
            ("request_model", &self.request_model),
            ("response_model", &self.response_model),
        ]
    }

    fn json(&self) -> String {
        let mut out = String::with_capacity(
            1024 + 2 * (self.input_messages.len() + self.output_messages.len()),
        );
        out.push('{');
        field(&mut out, "sample_id", &uuid_text(&self.sample_uuid), true);
        field(&mut out, "trace_id", &self.trace_id, false);
        field(&mut out, "span_id", &self.span_id, false);
        field(&mut out, "parent_span_id", &self.parent_span_id, false);
        field(&mut out, "ts", &self.ts, false);
        number(&mut out, "duration_ms", self.duration_ms);
        for (name, value) in self.labels() {
            field(&mut out, name, value, false);
        }
        out.push_str(",\"input_messages\":");
        out.push_str(&self.input_messages);
        out.push_str(",\"output_messages\":");
        out.push_str(&self.output_messages);
        field(&mut out, "system_instructions", &self.system_instructions, false);
        field(&mut out, "prompt_text", &self.prompt_text, false);
        field(&mut out, "completion_text", &self.completion_text, false);
        for (name, tokens) in
            [("input_tokens", self.input_tokens), ("output_tokens", self.output_tokens)]
        {
            if let Some(tokens) = tokens {
                out.push_str(&format!(",\"{name}\":{tokens}"));
            }
        }
        out.push_str(",\"finish_reasons\":[");
        for (i, reason) in self.finish_reasons.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(reason, &mut out);
        }
        out.push(']');
        field(&mut out, "conversation_id", &self.conversation_id, false);
        field(&mut out, "user_id", &self.user_id, false);
        out.push_str(",\"attributes\":");
        json_map(&self.attributes, &mut out);
        out.push_str(&format!(",\"redactions\":{}", self.redactions));
        field(&mut out, "source", self.source, false);
        field(&mut out, "scope", self.scope, false);
        out.push('}');
        out
    }

    /// ClickHouse RowBinary, in SAMPLE_COLUMNS order (ingested_at: its default, so the
    /// insert leaves it out).
    fn row_binary(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(512 + 2 * (self.input_messages.len() + self.output_messages.len()));
        // UUID: the two 64-bit halves, each little-endian
        for half in self.sample_uuid.chunks_exact(8) {
            out.extend(half.iter().rev());
        }
        for value in [&self.trace_id, &self.span_id, &self.parent_span_id] {
            binary_string(value, &mut out);
        }
        out.extend_from_slice(&self.ts_us.to_le_bytes()); // DateTime64(6): microseconds
        out.extend_from_slice(&self.duration_ms.to_le_bytes());
        for (_, value) in self.labels() {
            binary_string(value, &mut out);
        }
        for value in [
            &self.input_messages,
            &self.output_messages,
            &self.system_instructions,
            &self.prompt_text,
            &self.completion_text,
        ] {
            binary_string(value, &mut out);
        }
        for tokens in [self.input_tokens, self.output_tokens] {
            match tokens {
                None => out.push(1), // Nullable: the null flag
                Some(n) => {
                    out.push(0);
                    out.extend_from_slice(&n.to_le_bytes());
                }
            }
        }
        varint(self.finish_reasons.len(), &mut out);
        for reason in &self.finish_reasons {
            binary_string(reason, &mut out);
        }
        binary_string(&self.conversation_id, &mut out);
        binary_string(&self.user_id, &mut out);
        varint(self.attributes.len(), &mut out);
        for (key, value) in &self.attributes {
            binary_string(key, &mut out);
            binary_string(value, &mut out);
        }
        out.extend_from_slice(&self.redactions.to_le_bytes());
        binary_string(self.source, &mut out);
        binary_string(self.scope, &mut out);
        out
    }
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn binary_string(value: &str, out: &mut Vec<u8>) {
    varint(value.len(), out);
    out.extend_from_slice(value.as_bytes());
}

fn span_record(span: &Span, attrs: &[(&str, Value)], ctx: &Ctx) -> Option<String> {
    let rules = ctx.rules;
    let (ts, _) = timestamp(span.start_time_unix_nano);
    let kind = usize::try_from(span.kind).ok().and_then(|k| rules.span_kinds.get(k));
    let kind = kind.map_or("", String::as_str);
    let mut out = String::with_capacity(512);
    out.push('{');
    field(&mut out, "trace_id", &pyjson::hex(&span.trace_id), true);
    field(&mut out, "span_id", &pyjson::hex(&span.span_id), false);
    field(&mut out, "parent_span_id", &pyjson::hex(&span.parent_span_id), false);
    field(&mut out, "ts", &ts, false);
    number(&mut out, "duration_ms", duration_ms(span));
    field(&mut out, "name", &span.name, false);
    field(&mut out, "kind", kind, false);
    field(&mut out, "status", status(span), false);
    field(&mut out, "service", &text(first(ctx.resource, &rules.resource_aliases.service))?, false);
    let environment = text(first(ctx.resource, &rules.resource_aliases.environment))?;
    field(&mut out, "environment", &environment, false);
    field(&mut out, "scope", ctx.scope, false);
    out.push_str(",\"attributes\":");
    let limit = rules.max_attribute_chars;
    let texts: Vec<_> = attrs.iter().map(|(k, v)| (*k, pyjson::attribute_text(v, limit))).collect();
    json_map(&texts, &mut out);
    out.push('}');
    Some(out)
}

fn json_map(items: &[(&str, Cow<str>)], out: &mut String) {
    out.push('{');
    for (i, (key, value)) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(key, out);
        out.push(':');
        string(value, out);
    }
    out.push('}');
}

fn field(out: &mut String, name: &str, value: &str, leading: bool) {
    if !leading {
        out.push(',');
    }
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
    string(value, out);
}

fn number(out: &mut String, name: &str, value: f64) {
    out.push_str(&format!(",\"{name}\":{}", pyjson::float_repr(value, true)));
}

/// A JSON string (UTF-8 kept as it is; quotes, backslashes and control characters escaped).
pub fn string(value: &str, out: &mut String) {
    out.push('"');
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.push_str(&value[start..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(DIGITS[(b >> 4) as usize] as char);
                out.push(DIGITS[(b & 15) as usize] as char);
            }
        }
        start = i + 1;
    }
    out.push_str(&value[start..]);
    out.push('"');
}

fn duration_ms(span: &Span) -> f64 {
    span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) as f64 / 1e6
}

/// uuid5(namespace, "trace:span") (sample.sample_id_for): a replayed span lands on the same row.
fn sample_id(namespace: &[u8; 16], trace_id: &str, span_id: &str) -> [u8; 16] {
    let mut hasher = Sha1::new();
    hasher.update(namespace);
    hasher.update(trace_id.as_bytes());
    hasher.update(b":");
    hasher.update(span_id.as_bytes());
    let mut b: [u8; 16] = hasher.finalize()[..16].try_into().expect("SHA-1 has 20 bytes");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    b
}

fn uuid_text(id: &[u8; 16]) -> String {
    let h = pyjson::hex(id);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// `datetime.fromtimestamp(ns / 1e9, UTC)` as pydantic writes it, and its microseconds since
/// the epoch. The division in floating point and the half-even rounding are Python's, so the
/// two paths agree to the microsecond.
fn timestamp(ns: u64) -> (String, i64) {
    let t = ns as f64 / 1e9;
    let whole = t.trunc();
    let mut secs = whole as i64;
    let mut us = ((t - whole) * 1e6).round_ties_even() as i64;
    if us >= 1_000_000 {
        us -= 1_000_000;
        secs += 1;
    }
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let clock =
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    let text = if us == 0 { format!("{clock}Z") } else { format!("{clock}.{us:06}Z") };
    (text, secs * 1_000_000 + us)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_ids_match_python() {
        assert_eq!(timestamp(1_760_000_000_000_000_000).0, "2025-10-09T08:53:20Z");
        assert_eq!(timestamp(1_760_000_000_500_000_000).0, "2025-10-09T08:53:20.500000Z");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(class_name("<class 'openai.InternalServerError'>"), "InternalServerError");
        assert_eq!(class_name("timed out"), "timed out");
    }
}
