//! Counters the admin API shows (`/stats`), per traffic direction:
//! requests, responses by status class, and Envoy response flags.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::errors::ResponseFlag;

/// One direction's counters.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Requests received.
    pub requests: AtomicU64,
    /// Responses by class: 1xx..5xx.
    pub by_class: [AtomicU64; 5],
    /// Requests that failed with each flag (indexed like [`ResponseFlag::ALL`]).
    pub flags: [AtomicU64; ResponseFlag::ALL.len()],
    /// TCP connections proxied.
    pub tcp_connections: AtomicU64,
}

impl HttpStats {
    /// Counts a response.
    pub fn record(&self, status: http::StatusCode, flag: Option<ResponseFlag>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        if let Some(f) = flag {
            self.flags[f.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a flag of a request whose response is counted apart (a
    /// delayed request, `DI`, answers as usual).
    pub fn flag(&self, flag: ResponseFlag) {
        self.flags[flag.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Envoy-style `name: value` lines under `prefix`.
    pub fn render(&self, prefix: &str, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "{prefix}.downstream_rq_total: {}", get(&self.requests));
        for (i, c) in self.by_class.iter().enumerate() {
            let _ = writeln!(out, "{prefix}.downstream_rq_{}xx: {}", i + 1, get(c));
        }
        for f in ResponseFlag::ALL {
            let _ = writeln!(
                out,
                "{prefix}.response_flags.{}: {}",
                f.as_str(),
                get(&self.flags[f.index()])
            );
        }
        let _ = writeln!(
            out,
            "{prefix}.downstream_cx_tcp_total: {}",
            get(&self.tcp_connections)
        );
    }
}
