//! What `paydesk bench search` is asked to do, and the targets it judges against.

use std::path::PathBuf;
use std::time::Duration;

/// A search's p95 must stay at or under this.
pub const SEARCH_TARGET: Duration = Duration::from_millis(50);
/// The journey page's p95 must stay at or under this.
pub const JOURNEY_TARGET: Duration = Duration::from_millis(20);
/// List pages per second SQLite must serve with the benchmark's clients.
pub const SQLITE_PAGES_PER_SECOND: f64 = 1000.0;

/// The PostgreSQL database the benchmark keeps between runs.
pub const POSTGRES_DATABASE: &str = "paydesk_bench_search";

/// Settings for `paydesk bench search`.
#[derive(Debug, Clone)]
pub struct SearchBench {
    pub sqlite_journeys: i64,
    pub postgres_journeys: i64,
    pub postgres_url: Option<String>,
    pub sqlite_path: PathBuf,
    /// Timed requests per search (after a short warm-up).
    pub samples: usize,
    /// Length of each throughput run.
    pub seconds: u64,
    /// Concurrent clients in the throughput runs.
    pub clients: usize,
    pub skip_sqlite: bool,
    /// Throw the bench databases away and seed them again.
    pub reseed: bool,
    /// Print each plan's SQL as well.
    pub show_sql: bool,
    /// Skip timing the mix and reading plans: the throughput runs alone (for profiling).
    pub throughput_only: bool,
}
