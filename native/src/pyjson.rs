//! Attribute values as the Python path sees them, and their text the way Python writes it:
//! `str(value)` for the sample's metadata columns, `json.dumps(value)` for the attribute map.
//! Both paths must give a row the same text, so this mirrors CPython's formatting exactly.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

/// An OTLP attribute value after decoding (bytes become lower-case hex, as in the Python path).
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    None,
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    Float(f64),
    List(Vec<Value<'a>>),
    Dict(Vec<(&'a str, Value<'a>)>),
}

pub type Attributes<'a> = Vec<(&'a str, Value<'a>)>;

/// `None` when the value has a form only the Python path handles (string-table indexes).
pub fn from_any(value: Option<&AnyValue>) -> Option<Value<'_>> {
    let Some(inner) = value.and_then(|v| v.value.as_ref()) else {
        return Some(Value::None);
    };
    Some(match inner {
        any_value::Value::StringValue(s) => Value::Str(Cow::Borrowed(s)),
        any_value::Value::BoolValue(b) => Value::Bool(*b),
        any_value::Value::IntValue(i) => Value::Int(*i),
        any_value::Value::DoubleValue(f) => Value::Float(*f),
        any_value::Value::BytesValue(b) => Value::Str(Cow::Owned(hex(b))),
        any_value::Value::ArrayValue(a) => {
            Value::List(a.values.iter().map(|v| from_any(Some(v))).collect::<Option<_>>()?)
        }
        any_value::Value::KvlistValue(kv) => Value::Dict(attributes(&kv.values)?),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// Key-value pairs in order; a repeated key keeps its first position and its last value, as a
/// Python dict built from them does.
pub fn attributes(kvs: &[KeyValue]) -> Option<Attributes<'_>> {
    let mut out: Attributes = Vec::with_capacity(kvs.len());
    for kv in kvs {
        let value = from_any(kv.value.as_ref())?;
        match out.iter_mut().find(|(k, _)| *k == kv.key) {
            Some(slot) => slot.1 = value,
            None => out.push((&kv.key, value)),
        }
    }
    Some(out)
}

pub fn get<'a, 'b>(attrs: &'b [(&'a str, Value<'a>)], key: &str) -> Option<&'b Value<'a>> {
    attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// `str(value)` for the scalar forms; `None` for lists and dicts (their repr is left to Python).
pub fn py_str(value: &Value) -> Option<String> {
    match value {
        Value::None => Some(String::new()), // the Python path's _text(None)
        Value::Str(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        Value::Float(f) => Some(float_repr(*f, false)),
        Value::List(_) | Value::Dict(_) => None,
    }
}

/// `repr(float)` (or, with `json`, what `json.dumps` writes: NaN, Infinity, -Infinity).
pub fn float_repr(f: f64, json: bool) -> String {
    if f.is_nan() {
        return if json { "NaN" } else { "nan" }.to_string();
    }
    if f.is_infinite() {
        let text = if json { "Infinity" } else { "inf" };
        return if f < 0.0 { format!("-{text}") } else { text.to_string() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as repr does; only the layout differs.
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` writes an integer exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..16).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{esign}{:02}", exponent.abs());
    }
    if exponent < 0 {
        let zeros = "0".repeat((-exponent - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let whole = (exponent + 1) as usize;
    if digits.len() <= whole {
        format!("{sign}{digits}{}.0", "0".repeat(whole - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..whole], &digits[whole..])
    }
}

/// `json.dumps(value)` with its defaults: ASCII only, ", " and ": " separators.
pub fn dumps(value: &Value, out: &mut String) {
    match value {
        Value::None => out.push_str("null"),
        Value::Str(s) => ascii_string(s, out),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Float(f) => out.push_str(&float_repr(*f, true)),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dumps(item, out);
            }
            out.push(']');
        }
        Value::Dict(items) => {
            out.push('{');
            for (i, (key, item)) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                ascii_string(key, out);
                out.push_str(": ");
                dumps(item, out);
            }
            out.push('}');
        }
    }
}

pub fn ascii_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // everything but printable ASCII, as json.dumps escapes it
            c if !(' '..='~').contains(&c) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The attribute map's text of a value: strings as they are, ints in decimal, the rest as JSON;
/// at most `limit` characters.
pub fn attribute_text<'v>(value: &'v Value, limit: usize) -> Cow<'v, str> {
    let text = match value {
        Value::Str(s) => Cow::Borrowed(s.as_ref()),
        Value::Int(i) => Cow::Owned(i.to_string()),
        other => {
            let mut out = String::new();
            dumps(other, &mut out);
            Cow::Owned(out)
        }
    };
    if text.len() <= limit {
        return text; // no more bytes than the limit: no more characters either
    }
    match text.char_indices().nth(limit) {
        Some((cut, _)) => Cow::Owned(text[..cut].to_string()),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_python_writes_them() {
        for (f, text) in [
            (0.2, "0.2"),
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-2.5, "-2.5"),
            (123456.789, "123456.789"),
            (0.0, "0.0"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ] {
            assert_eq!(float_repr(f, false), text, "{f}");
        }
    }

    #[test]
    fn json_strings_are_ascii() {
        let mut out = String::new();
        dumps(
            &Value::List(vec![Value::Str("é\u{1F600}\"\u{1}\u{7f}".into()), Value::Int(3)]),
            &mut out,
        );
        assert_eq!(out, "[\"\\u00e9\\ud83d\\ude00\\\"\\u0001\\u007f\", 3]");
    }
}
