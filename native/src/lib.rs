//! Ingest's compiled span-to-row path. `decode_traces` turns one OTLP trace request into the
//! JSON lines of its `samples` and `spans` rows, without the GIL, for every span whose shape
//! it takes on, and names the others for the Python normaliser. What it knows of the normaliser
//! (alias tables, shapes' markers) comes from Python as `Rules`.

mod allocator;
mod messages;
mod pyjson;
mod redact;
mod row;
mod rules;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use rayon::prelude::*;

use redact::request::{Target, Walk};
use redact::scanner::{Gate, Scanner};
use redact::text::{Checks, Finding, Text, plain_ascii};
use row::{Ctx, Options, Outcome, SampleRow};

/// (samples, span rows, deferred span indexes); `None` when the request does not decode.
type Decoded = (Vec<(usize, SampleRow)>, Vec<String>, Vec<usize>);

pub fn decode(data: &[u8], options: &Options, rules: &rules::Rules) -> Option<Decoded> {
    let request = ExportTraceServiceRequest::decode(data).ok()?;
    let (mut samples, mut spans, mut deferred) = (Vec::new(), Vec::new(), Vec::new());
    // Spans are numbered in request order (resource, scope, span), as otlp.spans() yields them.
    let mut index = 0;
    for rs in &request.resource_spans {
        let resource = rs.resource.as_ref().map(|r| pyjson::attributes(&r.attributes));
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().map_or("", |s| s.name.as_str());
            for span in &ss.spans {
                let outcome = match &resource {
                    Some(None) => Outcome::Defer, // a resource value only Python decodes
                    Some(Some(attrs)) => {
                        row::span(span, &Ctx { resource: attrs, scope, options, rules })
                    }
                    None => row::span(span, &Ctx { resource: &[], scope, options, rules }),
                };
                match outcome {
                    Outcome::Sample(sample) => samples.push((index, sample)),
                    Outcome::Span(line) => spans.push(line),
                    Outcome::Defer => deferred.push(index),
                }
                index += 1;
            }
        }
    }
    Some((samples, spans, deferred))
}

type PySample<'py> =
    (String, String, String, i64, Bound<'py, PyBytes>, Bound<'py, PyBytes>, usize, bool);
type PyDecoded<'py> = (Vec<PySample<'py>>, Vec<Bound<'py, PyBytes>>, Vec<usize>);

fn to_python(py: Python<'_>, decoded: Decoded) -> PyDecoded<'_> {
    let (samples, spans, deferred) = decoded;
    let samples = samples
        .into_iter()
        .map(|(i, s)| {
            let line = PyBytes::new(py, s.line.as_bytes());
            let binary = PyBytes::new(py, &s.row_binary);
            (s.trace_id, s.span_id, s.sample_id, s.ts_us, line, binary, i, s.has_content)
        })
        .collect();
    let spans = spans.into_iter().map(|line| PyBytes::new(py, line.as_bytes())).collect();
    (samples, spans, deferred)
}

/// The normaliser's rules (a dict built by collectors/normalise/native.py `rules()`), checked
/// and held for `decode_traces`. A rule this build does not know raises.
#[pyclass(frozen, module = "watchkeeper_native")]
struct Rules(rules::Rules);

#[pymethods]
impl Rules {
    #[new]
    fn new(rules: Bound<'_, PyAny>) -> PyResult<Self> {
        rules::Rules::from_python(rules).map(Rules)
    }
}

/// The fields of each sample `decode_traces` returns, in order (Python checks them).
const SAMPLE_FIELDS: [&str; 8] =
    ["trace_id", "span_id", "sample_id", "ts_us", "line", "row_binary", "index", "has_content"];

/// Every message of a poll at once, on all cores and without the GIL. Each result is
/// ([sample: SAMPLE_FIELDS], [span row], [deferred index]), or None for a message that does
/// not decode.
#[pyfunction]
#[pyo3(signature = (messages, hash_user_ids, user_id_salt, rules))]
fn decode_traces<'py>(
    py: Python<'py>,
    messages: Vec<Bound<'py, PyBytes>>,
    hash_user_ids: bool,
    user_id_salt: String,
    rules: &Bound<'py, Rules>,
) -> Vec<Option<PyDecoded<'py>>> {
    let options = Options { hash_user_ids, user_id_salt };
    let rules = &rules.get().0;
    let views: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
    let decoded: Vec<Option<Decoded>> = py.detach(|| {
        views.par_iter().with_min_len(8).map(|data| decode(data, &options, rules)).collect()
    });
    decoded.into_iter().map(|d| d.map(|d| to_python(py, d))).collect()
}

/// The Python object whose `valid(check, value)` and `phone(candidate, before)` the
/// detectors call for the checks left to python-stdnum and libphonenumber. The detectors run
/// without the GIL (the sidecar's event loop, ingest and watch go on meanwhile); each call
/// takes it. A check that raises says no, as the Python detectors' own wrappers do.
struct PyChecks(Py<PyAny>);

impl Checks for PyChecks {
    fn valid(&self, check: &str, value: &str) -> bool {
        Python::attach(|py| {
            self.0
                .bind(py)
                .call_method1("valid", (check, value))
                .and_then(|r| r.is_truthy())
                .unwrap_or(false)
        })
    }

    fn phone(&self, candidate: &str, before: &str) -> Option<String> {
        Python::attach(|py| {
            self.0
                .bind(py)
                .call_method1("phone", (candidate, before))
                .and_then(|r| r.extract::<Option<String>>())
                .ok()
                .flatten()
        })
    }
}

/// `f`'s answer, or None (the Python detectors take the value or the request) should a
/// compiled detector panic: a bug there must cost speed, never an export.
fn guarded<T>(f: impl FnOnce() -> Option<T>) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok().flatten()
}

type PyFinding = (usize, usize, String, String);

fn to_tuple(f: Finding) -> PyFinding {
    (f.start, f.end, f.kind, f.value)
}

/// The compiled detectors of one redaction config (redact/scanner.rs), and the walk over
/// values and requests that tells Python which values it need not look at.
#[pyclass(frozen, module = "watchkeeper_native")]
struct RedactionScanner {
    scanner: Scanner,
    checks: Py<PyAny>,
    skip: Vec<String>,
    mask: bool,
}

#[pymethods]
impl RedactionScanner {
    /// `detectors`: (name, digits, token_run, marks) each, the gate of scanner.py's
    /// `Detector`; `ranked`: the enabled types, the one that wins an overlap first; `skip`:
    /// attribute keys left alone; `mask`: whether every finding is masked (no policies, the
    /// default action). A name this build lacks raises.
    #[new]
    fn new(
        detectors: Vec<(String, usize, bool, Vec<String>)>,
        ranked: Vec<String>,
        skip: Vec<String>,
        mask: bool,
        checks: Py<PyAny>,
    ) -> PyResult<Self> {
        let detectors = detectors
            .into_iter()
            .map(|(name, digits, token_run, marks)| {
                redact::detector(&name)
                    .map(|d| (d, Gate { digits, token_run, marks }))
                    .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(name))
            })
            .collect::<PyResult<_>>()?;
        Ok(RedactionScanner { scanner: Scanner::new(detectors, ranked, !mask), checks, skip, mask })
    }

    /// Every finding in detector order; None when the text or its context is not plain
    /// ASCII (the Python detectors take it).
    fn scan(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyString>,
        context: &Bound<'_, PyString>,
    ) -> Option<Vec<PyFinding>> {
        // a lone surrogate (from a \ud800 escape) is no UTF-8: Python's to judge
        let (text, context) = (text.to_str().ok()?, context.to_str().ok()?);
        let checks = PyChecks(self.checks.clone_ref(py));
        let found = py.detach(|| guarded(|| self.scanner.scan(text, context, &checks)))?;
        Some(found.into_iter().map(to_tuple).collect())
    }

    /// The spans (or log records) of an encoded request with values to change (request.rs
    /// `Target`); None when the request does not decode.
    fn targets(&self, py: Python<'_>, body: &[u8], logs: bool) -> Option<Vec<Target>> {
        let checks = PyChecks(self.checks.clone_ref(py));
        py.detach(|| {
            guarded(|| {
                let walk = Walk {
                    scanner: &self.scanner,
                    checks: &checks,
                    skip: &self.skip,
                    mask: self.mask,
                };
                if logs { walk.logs(body) } else { walk.traces(body) }
            })
        })
    }
}

/// One compiled detector on its own, ungated (for the differential tests); None when the
/// text or context is not plain ASCII or no detector has that name.
#[pyfunction]
fn redaction_detect(
    py: Python<'_>,
    name: &str,
    text: &Bound<'_, PyString>,
    context: &Bound<'_, PyString>,
    checks: Py<PyAny>,
) -> Option<Vec<PyFinding>> {
    let detect = redact::detector(name)?;
    let (text, context) = (text.to_str().ok()?, context.to_str().ok()?);
    if !plain_ascii(text) || !plain_ascii(context) {
        return None;
    }
    let checks = PyChecks(checks);
    let found = py.detach(|| detect(&Text::new(text, context), &checks));
    Some(found.into_iter().map(to_tuple).collect())
}

#[pymodule]
fn watchkeeper_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    allocator::tune();
    m.add("ARENA_EAGER_COMMIT", allocator::arena_eager_commit())?;
    m.add("SAMPLE_COLUMNS", row::SAMPLE_COLUMNS.to_vec())?;
    m.add("SAMPLE_FIELDS", SAMPLE_FIELDS.to_vec())?;
    m.add("REDACTION_DETECTORS", redact::names())?;
    m.add_class::<Rules>()?;
    m.add_class::<RedactionScanner>()?;
    m.add_function(wrap_pyfunction!(redaction_detect, m)?)?;
    m.add_function(wrap_pyfunction!(decode_traces, m)?)
}
