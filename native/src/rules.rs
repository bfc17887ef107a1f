//! What the compiled path knows of the Python normaliser, handed over from Python once
//! (collectors/normalise/native.py `rules()`): the alias tables, the one content shape this path
//! takes on, and the markers of every other shape. Nothing of it is written here, so a change to
//! the normaliser or a new shape reaches this path without a change to native/. A rule this
//! build does not know is an error, never ignored: ingest then takes the Python path.

use opentelemetry_proto::tonic::trace::v1::Span;
use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::pyjson::{Value, get};

/// Each sample field with the attribute names that carry it, newest convention first
/// (normaliser.ALIASES).
pub struct Aliases {
    pub provider: Vec<String>,
    pub operation: Vec<String>,
    pub request_model: Vec<String>,
    pub response_model: Vec<String>,
    pub input_tokens: Vec<String>,
    pub output_tokens: Vec<String>,
    pub finish_reasons: Vec<String>,
    pub conversation_id: Vec<String>,
    pub user_id: Vec<String>,
    pub error_type: Vec<String>,
}

/// Resource attribute names of the row's resource columns (normaliser.RESOURCE_ALIASES).
pub struct ResourceAliases {
    pub service: Vec<String>,
    pub environment: Vec<String>,
    pub k8s_namespace: Vec<String>,
    pub k8s_pod: Vec<String>,
}

/// The content shape this path takes on: its name (the row's `source`) and its span attributes.
pub struct Shape {
    pub name: String,
    pub input: String,
    pub output: String,
    pub system: String,
}

/// What marks a span for the Python normaliser: attribute keys, key prefixes, event names.
pub struct Markers {
    pub keys: Vec<String>,
    pub prefixes: Vec<String>,
    pub events: Vec<String>,
}

pub struct Rules {
    pub aliases: Aliases,
    pub resource_aliases: ResourceAliases,
    /// Attribute keys kept out of a sample's attribute map besides its content keys.
    pub metadata_keys: Vec<String>,
    pub redactions_key: String,
    pub default_operation: String,
    pub llm_operations: Vec<String>,
    pub genai_markers: Vec<String>,
    pub feedback_span: String,
    pub feedback_span_id_key: String,
    pub exception_event: String,
    pub exception_type_key: String,
    pub max_attribute_chars: usize,
    pub span_kinds: Vec<String>,
    pub sample_namespace: [u8; 16],
    pub shape: Shape,
    pub defer: Markers,
}

impl Shape {
    pub fn has_key(&self, key: &str) -> bool {
        [&self.input, &self.output, &self.system].iter().any(|k| *k == key)
    }
}

impl Rules {
    /// A span carrying another shape's marker (or metadata only Python reads).
    pub fn defers(&self, span: &Span, attrs: &[(&str, Value)]) -> bool {
        let marked = |k: &str| {
            self.defer.keys.iter().any(|d| d == k)
                || self.defer.prefixes.iter().any(|p| k.starts_with(p.as_str()))
        };
        attrs.iter().any(|(k, _)| marked(k))
            || span.events.iter().any(|e| self.defer.events.contains(&e.name))
    }

    /// normaliser.is_feedback
    pub fn is_feedback(&self, name: &str, attrs: &[(&str, Value)]) -> bool {
        name == self.feedback_span && get(attrs, &self.feedback_span_id_key).is_some()
    }

    pub fn is_metadata(&self, key: &str) -> bool {
        self.metadata_keys.iter().any(|k| k == key)
    }
}

/// A dict read key by key; `done` fails on a key that was not read.
struct Fields<'py> {
    dict: Bound<'py, PyDict>,
    what: &'static str,
    read: Vec<&'static str>,
}

impl<'py> Fields<'py> {
    fn new(value: Bound<'py, PyAny>, what: &'static str) -> PyResult<Self> {
        Ok(Fields { dict: value.cast_into::<PyDict>()?, what, read: Vec::new() })
    }

    fn item(&mut self, key: &'static str) -> PyResult<Bound<'py, PyAny>> {
        self.read.push(key);
        self.dict
            .get_item(key)?
            .ok_or_else(|| PyKeyError::new_err(format!("rules: {}{key}", self.what)))
    }

    fn get<T: FromPyObjectOwned<'py>>(&mut self, key: &'static str) -> PyResult<T> {
        self.item(key)?.extract().map_err(Into::into)
    }

    fn done(self) -> PyResult<()> {
        for key in self.dict.keys() {
            let key: String = key.extract()?;
            if !self.read.contains(&key.as_str()) {
                let message = format!("rules: {}{key} is not known to this build", self.what);
                return Err(PyValueError::new_err(message));
            }
        }
        Ok(())
    }
}

impl Rules {
    pub fn from_python(rules: Bound<'_, PyAny>) -> PyResult<Rules> {
        let mut top = Fields::new(rules, "")?;
        let mut a = Fields::new(top.item("aliases")?, "aliases.")?;
        let aliases = Aliases {
            provider: a.get("provider")?,
            operation: a.get("operation")?,
            request_model: a.get("request_model")?,
            response_model: a.get("response_model")?,
            input_tokens: a.get("input_tokens")?,
            output_tokens: a.get("output_tokens")?,
            finish_reasons: a.get("finish_reasons")?,
            conversation_id: a.get("conversation_id")?,
            user_id: a.get("user_id")?,
            error_type: a.get("error_type")?,
        };
        a.done()?;
        let mut r = Fields::new(top.item("resource_aliases")?, "resource_aliases.")?;
        let resource_aliases = ResourceAliases {
            service: r.get("service")?,
            environment: r.get("environment")?,
            k8s_namespace: r.get("k8s_namespace")?,
            k8s_pod: r.get("k8s_pod")?,
        };
        r.done()?;
        let mut s = Fields::new(top.item("shape")?, "shape.")?;
        let shape = Shape {
            name: s.get("name")?,
            input: s.get("input")?,
            output: s.get("output")?,
            system: s.get("system")?,
        };
        s.done()?;
        let mut d = Fields::new(top.item("defer")?, "defer.")?;
        let defer = Markers {
            keys: d.get("keys")?,
            prefixes: d.get("prefixes")?,
            events: d.get("events")?,
        };
        d.done()?;
        let rules = Rules {
            aliases,
            resource_aliases,
            metadata_keys: top.get("metadata_keys")?,
            redactions_key: top.get("redactions_key")?,
            default_operation: top.get("default_operation")?,
            llm_operations: top.get("llm_operations")?,
            genai_markers: top.get("genai_markers")?,
            feedback_span: top.get("feedback_span")?,
            feedback_span_id_key: top.get("feedback_span_id_key")?,
            exception_event: top.get("exception_event")?,
            exception_type_key: top.get("exception_type_key")?,
            max_attribute_chars: top.get("max_attribute_chars")?,
            span_kinds: top.get("span_kinds")?,
            sample_namespace: top.get("sample_namespace")?,
            shape,
            defer,
        };
        top.done()?;
        Ok(rules)
    }
}
