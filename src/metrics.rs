//! In-process counters for `/metrics`, rendered in the Prometheus text format.
//! Route labels are route templates (`/payments/<id>`), never raw paths, so the number of
//! series stays bounded whatever clients send.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    /// Plain event counters (webhooks accepted, rejected, …), by metric name.
    counters: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let key = (method.to_string(), route.to_string());
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((key.0.clone(), key.1.clone(), status))
                .or_default() += 1;
        }
        if let Ok(mut latency) = self.latency.lock() {
            let h = latency.entry(key).or_default();
            let secs = elapsed.as_secs_f64();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    /// Add one to a plain counter.
    pub fn count(&self, name: &'static str) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry(name).or_default() += 1;
        }
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .map(|c| c.get(name).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The request metrics, followed by the gauges given by the caller.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP paydesk_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE paydesk_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((method, route, status), n) in requests.iter() {
                let _ = writeln!(out, "paydesk_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}", escape(method), escape(route));
            }
        }
        out.push_str(
            "# HELP paydesk_http_request_duration_seconds Time to answer HTTP requests.\n",
        );
        out.push_str("# TYPE paydesk_http_request_duration_seconds histogram\n");
        if let Ok(latency) = self.latency.lock() {
            for ((method, route), h) in latency.iter() {
                let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(out, "paydesk_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}", h.counts[i]);
                }
                let _ = writeln!(
                    out,
                    "paydesk_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "paydesk_http_request_duration_seconds_sum{{{labels}}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "paydesk_http_request_duration_seconds_count{{{labels}}} {}",
                    h.count
                );
            }
        }
        if let Ok(counters) = self.counters.lock() {
            for (name, n) in counters.iter() {
                let _ = writeln!(out, "# TYPE {name} counter\n{name} {n}");
            }
        }
        let mut last_name = "";
        for g in gauges {
            if g.name != last_name {
                let _ = writeln!(out, "# HELP {} {}\n# TYPE {} gauge", g.name, g.help, g.name);
                last_name = g.name;
            }
            let labels: Vec<String> = g
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            if labels.is_empty() {
                let _ = writeln!(out, "{} {}", g.name, g.value);
            } else {
                let _ = writeln!(out, "{}{{{}}} {}", g.name, labels.join(","), g.value);
            }
        }
        out
    }
}

/// One gauge sample. Samples of the same metric must be adjacent.
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::default();
        m.record_request("GET", "/healthz", 200, Duration::from_millis(3));
        m.record_request("GET", "/healthz", 200, Duration::from_millis(30));
        let text = m.render(&[Gauge {
            name: "paydesk_jobs",
            help: "Jobs by state.",
            labels: vec![("state", "dead".into())],
            value: 2.0,
        }]);
        assert!(text.contains(
            "paydesk_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"
        ));
        assert!(text.contains("paydesk_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"0.005\"} 1"));
        assert!(text.contains("paydesk_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"0.05\"} 2"));
        assert!(text.contains("paydesk_jobs{state=\"dead\"} 2"));
    }
}
