//! The text encoding of the exposition format (0.0.4): family headers, samples with escaped
//! labels, histogram series and quantile gauges, value formatting.
//!
//! Must not: know metric names or how shards merge (the family files do).

use crate::metrics::histogram::{EXPORTED_QUANTILES, LATENCY_BUCKETS_SECONDS, LatencyHistogram};
use std::fmt::Write as _;

/// Escapes a label value: backslash, double quote and newline (exposition format rules).
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The page being written.
pub(super) struct Out {
    pub(super) text: String,
}

impl Out {
    pub(super) fn with_capacity(bytes: usize) -> Out {
        Out {
            text: String::with_capacity(bytes),
        }
    }

    pub(super) fn family(&mut self, name: &str, kind: &str, help: &str) {
        // HELP text escapes backslash and newline only.
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    pub(super) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label_value(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    /// One histogram series (buckets, sum, count) in seconds.
    pub(super) fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &LatencyHistogram) {
        let buckets = h.cumulative_buckets();
        let bucket_name = format!("{name}_bucket");
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        let les: Vec<String> = LATENCY_BUCKETS_SECONDS
            .iter()
            .map(|b| format_value(*b))
            .chain(std::iter::once("+Inf".to_string()))
            .collect();
        for (le, count) in les.iter().zip(&buckets) {
            with_le.push(("le", le));
            self.sample(&bucket_name, &with_le, *count as f64);
            with_le.pop();
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_ns() as f64 / 1e9);
        self.sample(&format!("{name}_count"), labels, h.count() as f64);
    }

    /// Quantile gauges of one histogram (none when it is empty).
    pub(super) fn quantiles(&mut self, name: &str, labels: &[(&str, &str)], h: &LatencyHistogram) {
        for q in EXPORTED_QUANTILES {
            if let Some(ns) = h.quantile_ns(*q) {
                let q_text = format_value(*q);
                let mut with_q: Vec<(&str, &str)> = labels.to_vec();
                with_q.push(("quantile", &q_text));
                self.sample(name, &with_q, ns as f64 / 1e9);
            }
        }
    }

    /// A latency family without labels: histogram plus its quantile gauges.
    pub(super) fn latency_family(&mut self, name: &str, help: &str, h: &LatencyHistogram) {
        self.family(name, "histogram", help);
        self.histogram(name, &[], h);
        let q_name = format!("{name}_quantile");
        self.family(
            &q_name,
            "gauge",
            &format!("{help} Quantiles from hdrhistogram (1 % precision)."),
        );
        self.quantiles(&q_name, &[], h);
    }
}

/// Integers print without a fraction, other values in Rust's shortest round-trip form.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}
