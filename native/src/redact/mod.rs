//! Redaction's detectors over plain ASCII text, each the compiled twin of the Python detector
//! of the same name in agent/sidecar/redaction/ (tests/test_native_redaction.py holds every
//! one to its Python reference, finding for finding). Python's Scanner calls `scan` once per
//! value for all of them and settles overlaps itself.

pub mod emails;
pub mod finance;
pub mod keys;
pub mod national;
pub mod network;
pub mod passwords;
pub mod phones;
pub mod request;
pub mod scanner;
pub mod text;
pub mod values;
pub mod wire;

use text::{Checks, Finding, Text};

/// A detector: every finding of its kinds in a text.
pub type Detect = fn(&Text, &dyn Checks) -> Vec<Finding>;

const ALL: [&[(&str, Detect)]; 7] = [
    emails::DETECTORS,
    finance::DETECTORS,
    keys::DETECTORS,
    national::DETECTORS,
    network::DETECTORS,
    passwords::DETECTORS,
    phones::DETECTORS,
];

/// The compiled detector of that name (its Python twin's).
pub fn detector(name: &str) -> Option<Detect> {
    ALL.iter().flat_map(|list| list.iter()).find(|(n, _)| *n == name).map(|(_, d)| *d)
}

/// The names of every compiled detector.
pub fn names() -> Vec<&'static str> {
    ALL.iter().flat_map(|list| list.iter()).map(|(n, _)| *n).collect()
}
