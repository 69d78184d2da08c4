//! Prometheus counters, rendered in the text exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counters by name and label set.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
}

const HELP: &[(&str, &str)] = &[
    ("valet_http_requests_total", "HTTP requests by route and status code."),
    ("valet_executions_total", "Session executions by outcome."),
    ("valet_sessions_total", "Session lifecycle events."),
    ("valet_sponsorships_total", "Sponsored operations by outcome: reserved, refused, spent, released, expired."),
];

impl Metrics {
    /// Adds one to `name{labels}`.
    pub fn inc(&self, name: &'static str, labels: &[(&str, &str)]) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let mut counters = self.counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counters.entry((name, labels.join(","))).or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let counters = self.counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        for (name, help) in HELP {
            out += &format!("# HELP {name} {help}\n# TYPE {name} counter\n");
            for ((n, labels), value) in counters.iter() {
                if n == name {
                    out += &format!("{name}{{{labels}}} {value}\n");
                }
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
