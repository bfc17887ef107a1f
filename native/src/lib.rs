//! Ingest's compiled span-to-row path. `decode_traces` turns one OTLP trace request into the
//! JSON lines of its `samples` and `spans` rows, without the GIL, for every span whose shape
//! it takes on, and names the others for the Python normaliser. What it knows of the normaliser
//! (alias tables, shapes' markers) comes from Python as `Rules`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc; // rows are many small allocations

mod messages;
mod pyjson;
mod row;
mod rules;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rayon::prelude::*;

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

#[pymodule]
fn watchkeeper_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SAMPLE_COLUMNS", row::SAMPLE_COLUMNS.to_vec())?;
    m.add("SAMPLE_FIELDS", SAMPLE_FIELDS.to_vec())?;
    m.add_class::<Rules>()?;
    m.add_function(wrap_pyfunction!(decode_traces, m)?)
}
