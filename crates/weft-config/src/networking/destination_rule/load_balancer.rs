//! Load balancing: simple algorithms, consistent hashing, locality
//! distribution and failover, warmup.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::check_duration;
use crate::diag::Code;
use crate::duration::Duration;
use crate::validate::{Validate, Validator, check_percent};

/// `LoadBalancerSettings`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadBalancerSettings {
    /// A simple algorithm (oneof with `consistentHash`).
    pub simple: Option<SimpleLb>,
    /// Consistent hashing for session affinity (oneof with `simple`).
    pub consistent_hash: Option<ConsistentHashLb>,
    /// Locality-aware distribution and failover (replaces the mesh's).
    pub locality_lb_setting: Option<LocalityLbSetting>,
    /// Deprecated: slow-start window for new endpoints; use `warmup`.
    pub warmup_duration_secs: Option<Duration>,
    /// Slow start for new endpoints.
    pub warmup: Option<WarmupConfiguration>,
}

/// `LoadBalancerSettings.SimpleLB`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    /// Istio picks (LEAST_REQUEST).
    #[default]
    Unspecified,
    /// Deprecated alias of LEAST_REQUEST.
    LeastConn,
    /// A random healthy host.
    Random,
    /// The original destination address, no balancing.
    Passthrough,
    /// Round robin.
    RoundRobin,
    /// Fewest outstanding requests (of two random picks).
    LeastRequest,
}

/// `LoadBalancerSettings.ConsistentHashLB`: one hash key, one algorithm.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsistentHashLb {
    /// Hash a request header (hash key oneof).
    pub http_header_name: Option<String>,
    /// Hash a cookie, generating it if absent (hash key oneof).
    pub http_cookie: Option<HttpCookie>,
    /// Hash the source IP (hash key oneof).
    pub use_source_ip: Option<bool>,
    /// Hash a query parameter (hash key oneof).
    pub http_query_parameter_name: Option<String>,
    /// Ring hash (the default algorithm; oneof with `maglev`).
    pub ring_hash: Option<RingHash>,
    /// Maglev (oneof with `ringHash`).
    pub maglev: Option<Maglev>,
    /// Deprecated: ring size; use `ringHash.minimumRingSize`.
    pub minimum_ring_size: u64,
}

/// `ConsistentHashLB.RingHash`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RingHash {
    /// Minimum virtual nodes on the ring (default 1024).
    pub minimum_ring_size: u64,
}

/// `ConsistentHashLB.MagLev`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Maglev {
    /// Lookup table size, a prime below 5000011 (default 65537).
    pub table_size: u64,
}

/// `ConsistentHashLB.HTTPCookie`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpCookie {
    /// Cookie name; required.
    pub name: String,
    /// Path of a generated cookie.
    pub path: String,
    /// Lifetime of a generated cookie (0: a session cookie).
    pub ttl: Option<Duration>,
    /// Extra attributes of a generated cookie.
    pub attributes: Vec<CookieAttribute>,
}

/// `HTTPCookie.Attribute`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CookieAttribute {
    /// Attribute name (e.g. `SameSite`); required.
    pub name: String,
    /// Attribute value (empty for flags such as `Secure`).
    pub value: String,
}

/// `LocalityLoadBalancerSetting`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LocalityLbSetting {
    /// Weights from each client locality to upstream localities.
    pub distribute: Vec<LocalityDistribute>,
    /// Region to fail over to, per region.
    pub failover: Vec<LocalityFailover>,
    /// Ordered labels (`key` or `key=value`) for priority-based failover.
    pub failover_priority: Vec<String>,
    /// Turns locality load balancing on or off for this rule.
    pub enabled: Option<bool>,
}

/// `LocalityLoadBalancerSetting.Distribute`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LocalityDistribute {
    /// Client locality `region/zone/subzone`, trailing `*` allowed.
    pub from: String,
    /// Upstream locality → weight; weights sum to 100.
    pub to: BTreeMap<String, u32>,
}

/// `LocalityLoadBalancerSetting.Failover`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LocalityFailover {
    /// Region whose endpoints became unhealthy.
    pub from: String,
    /// Region to send its traffic to.
    pub to: String,
}

/// `WarmupConfiguration`: slow start for new endpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WarmupConfiguration {
    /// How long a new endpoint warms up; required.
    pub duration: Option<Duration>,
    /// Traffic share a new endpoint starts with, percent (default 10).
    pub minimum_percent: Option<f64>,
    /// Curve of the ramp-up, at least 1 (default 1.0: linear).
    pub aggression: Option<f64>,
}

impl LoadBalancerSettings {
    /// Checks the settings; `has_outlier` says whether the enclosing policy
    /// sets outlier detection (failover needs it).
    pub(crate) fn check(&self, v: &mut Validator, has_outlier: bool) {
        if self.simple.is_some() && self.consistent_hash.is_some() {
            v.conflict("only one of simple or consistentHash can be set");
        }
        if self.simple == Some(SimpleLb::LeastConn) {
            v.field("simple", |v| {
                v.report(Code::Deprecated, "LEAST_CONN is deprecated")
                    .hint("use LEAST_REQUEST");
            });
        }
        v.nested("consistentHash", &self.consistent_hash);
        if let Some(l) = &self.locality_lb_setting {
            v.field("localityLbSetting", |v| l.check(v, has_outlier));
        }
        check_duration(v, "warmupDurationSecs", &self.warmup_duration_secs);
        if self.warmup_duration_secs.is_some() {
            if self.warmup.is_some() {
                v.conflict("only one of warmupDurationSecs or warmup can be set");
            } else {
                v.field("warmupDurationSecs", |v| {
                    v.report(Code::Deprecated, "warmupDurationSecs is deprecated")
                        .hint("use warmup: {duration: ...}");
                });
            }
        }
        v.nested("warmup", &self.warmup);
        let warms = self.warmup.is_some() || self.warmup_duration_secs.is_some();
        let linear = matches!(
            self.simple,
            None | Some(
                SimpleLb::Unspecified
                    | SimpleLb::RoundRobin
                    | SimpleLb::LeastRequest
                    | SimpleLb::LeastConn
            )
        ) && self.consistent_hash.is_none();
        if warms && !linear {
            v.warn("warmup only applies to ROUND_ROBIN and LEAST_REQUEST load balancing; it has no effect here");
        }
    }
}

impl Validate for WarmupConfiguration {
    fn validate(&self, v: &mut Validator) {
        if self.duration.is_none() {
            v.required("duration")
                .hint("set how long new endpoints warm up, e.g. 60s");
        }
        check_duration(v, "duration", &self.duration);
        if let Some(p) = self.minimum_percent {
            v.field("minimumPercent", |v| check_percent(v, p));
        }
        if let Some(a) = self.aggression
            && (a.is_nan() || a < 1.0)
        {
            v.field("aggression", |v| {
                v.error(format!("aggression {a} must be at least 1"))
                    .hint("1.0 ramps traffic up linearly; larger values start slower");
            });
        }
    }
}

impl Validate for ConsistentHashLb {
    fn validate(&self, v: &mut Validator) {
        let keys = [
            self.http_header_name.is_some(),
            self.http_cookie.is_some(),
            self.use_source_ip.is_some(),
            self.http_query_parameter_name.is_some(),
        ];
        match keys.iter().filter(|k| **k).count() {
            0 => {
                v.error("consistent hash needs a hash key").hint(
                    "set one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName",
                );
            }
            1 => {}
            _ => {
                v.conflict("only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName can be set");
            }
        }
        if let Some(h) = &self.http_header_name {
            v.field("httpHeaderName", |v| {
                if h.is_empty()
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    v.error(format!("header name {h:?} is not a valid header name"));
                }
            });
        }
        if self.http_query_parameter_name.as_deref() == Some("") {
            v.field("httpQueryParameterName", |v| {
                v.error("query parameter name must not be empty");
            });
        }
        if self.use_source_ip == Some(false) && keys.iter().filter(|k| **k).count() == 1 {
            v.field("useSourceIp", |v| {
                v.warn("useSourceIp: false leaves nothing to hash: requests are spread randomly");
            });
        }
        if let Some(c) = &self.http_cookie {
            v.field("httpCookie", |v| {
                if c.name.is_empty() {
                    v.required("name")
                        .hint("name the cookie to hash, e.g. user");
                }
                v.each("attributes", &c.attributes, |v, a| {
                    if a.name.is_empty() {
                        v.required("name");
                    }
                });
            });
        }
        if self.ring_hash.is_some() && self.maglev.is_some() {
            v.conflict("only one of ringHash or maglev can be set");
        }
        if self.minimum_ring_size != 0 {
            v.field("minimumRingSize", |v| {
                if self.ring_hash.is_some() || self.maglev.is_some() {
                    v.error("only one of minimumRingSize or maglev/ringHash can be specified");
                } else {
                    v.report(Code::Deprecated, "minimumRingSize is deprecated")
                        .hint("use ringHash: {minimumRingSize: ...}");
                }
            });
        }
        if let Some(r) = &self.ring_hash
            && r.minimum_ring_size > 8_388_608
        {
            v.field("ringHash", |v| {
                v.field("minimumRingSize", |v| {
                    v.error(format!(
                        "minimumRingSize {} is above the maximum of 8388608",
                        r.minimum_ring_size
                    ));
                });
            });
        }
        if let Some(m) = &self.maglev {
            v.field("maglev", |v| {
                let n = m.table_size;
                if n == 0 {
                    v.required("tableSize").hint("a prime such as 65537");
                } else if n >= 5_000_011 {
                    v.field("tableSize", |v| {
                        v.error(format!(
                            "tableSize {n} must be less than 5000011 for maglev"
                        ));
                    });
                } else if !is_prime(n) {
                    v.field("tableSize", |v| {
                        v.error(format!("tableSize {n} must be a prime number for maglev"))
                            .hint("e.g. 65537 or 131071");
                    });
                }
            });
        }
    }
}

/// Envoy's primality test for Maglev table sizes.
pub(crate) fn is_prime(x: u64) -> bool {
    if x < 4 {
        return x != 0;
    }
    if x.is_multiple_of(2) {
        return false;
    }
    let mut f = 3;
    while f * f <= x {
        if x.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

/// Topology labels `failoverPriority` may not use together with `failover`.
const REGION_ZONE_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

impl Validate for LocalityLbSetting {
    /// Mesh-wide settings (MeshConfig): no outlier detection to ask for.
    fn validate(&self, v: &mut Validator) {
        self.check(v, true);
    }
}

impl LocalityLbSetting {
    fn check(&self, v: &mut Validator, has_outlier: bool) {
        if !self.distribute.is_empty() && !self.failover.is_empty() {
            v.conflict("can not simultaneously specify 'distribute' and 'failover'");
            return;
        }
        if !self.failover.is_empty() {
            v.field("failoverPriority", |v| {
                for (i, p) in self.failover_priority.iter().enumerate() {
                    if REGION_ZONE_LABELS.contains(&p.as_str()) {
                        v.index(i, |v| {
                            v.error(format!(
                                "can not simultaneously set 'failover' and topology label {p:?} in 'failoverPriority'"
                            ));
                        });
                    }
                }
            });
        }
        v.field("distribute", |v| {
            for (i, d) in self.distribute.iter().enumerate() {
                v.index(i, |v| {
                    if d.from.is_empty() {
                        v.required("from");
                    }
                    v.field("to", |v| {
                        let mut total: u64 = 0;
                        for (loc, w) in &d.to {
                            v.key(loc, |v| {
                                if *w == 0 || *w > 100 {
                                    v.error(format!(
                                        "locality weight {w} must be in range [1, 100]"
                                    ));
                                }
                            });
                            total += u64::from(*w);
                        }
                        if total != 100 {
                            v.error(format!("total locality weight {total} != 100"))
                                .hint("the weights of one `from` locality must add up to 100");
                        }
                        let to: Vec<&str> = d.to.keys().map(String::as_str).collect();
                        if let Some((j, e)) = locality_error(&to) {
                            v.key(to[j], |v| {
                                v.error(e);
                            });
                        }
                    });
                });
            }
            let froms: Vec<(usize, &str)> = self
                .distribute
                .iter()
                .enumerate()
                .filter(|(_, d)| !d.from.is_empty())
                .map(|(i, d)| (i, d.from.as_str()))
                .collect();
            let names: Vec<&str> = froms.iter().map(|(_, f)| *f).collect();
            if let Some((j, e)) = locality_error(&names) {
                v.index(froms[j].0, |v| {
                    v.field("from", |v| {
                        v.error(e);
                    });
                });
            }
        });
        if (!self.failover.is_empty() || !self.failover_priority.is_empty()) && !has_outlier {
            v.warn("outlier detection policy must be provided for failover")
                .hint("failover only happens when outlierDetection marks endpoints unhealthy");
        }
        v.each("failover", &self.failover, |v, f| {
            if f.from.is_empty() {
                v.required("from");
            }
            if f.to.is_empty() {
                v.required("to");
            }
            if f.from.is_empty() || f.to.is_empty() {
                return;
            }
            if f.from == f.to {
                v.error("locality lb failover settings must specify different regions");
            }
            if f.from.contains('/') || f.to.contains('/') {
                v.error("locality lb failover only specify region")
                    .hint("failover names regions; zones fail over within their region already");
            }
            if f.from.contains('*') || f.to.contains('*') {
                v.error("locality lb failover region should not contain '*' wildcard");
            }
        });
        v.each("failoverPriority", &self.failover_priority, |v, p| {
            if p.is_empty() || p.starts_with('=') {
                v.error("failoverPriority entries are label keys or key=value");
            }
        });
    }
}

/// Istio's `validateLocalities`: at most one wildcard, at the end; no
/// empty parts; no locality overlapping an earlier one. Returns the first
/// problem: the index of the locality at fault and what is wrong.
fn locality_error(localities: &[&str]) -> Option<(usize, String)> {
    type Zones = BTreeMap<String, BTreeSet<String>>;
    let mut seen: BTreeMap<String, Zones> = BTreeMap::new();
    for (i, loc) in localities.iter().enumerate() {
        let stars = loc.matches('*').count();
        if stars > 1 || (stars == 1 && !loc.ends_with('*')) {
            return Some((
                i,
                format!(
                    "locality {loc} wildcard '*' number can not exceed 1 and must be in the end"
                ),
            ));
        }
        let overlap = format!("locality {loc} overlap with previous specified ones");
        if seen.contains_key("*") {
            return Some((i, overlap));
        }
        let parts: Vec<&str> = loc.splitn(3, '/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Some((
                i,
                format!("locality {loc} must not contain empty region/zone/subzone info"),
            ));
        }
        let overlaps = match parts.as_slice() {
            [region] => seen
                .insert(
                    region.to_string(),
                    BTreeMap::from([("*".into(), BTreeSet::from(["*".into()]))]),
                )
                .is_some(),
            [region, zone] => {
                let zones = seen.entry(region.to_string()).or_default();
                zones.contains_key("*")
                    || zones
                        .insert(zone.to_string(), BTreeSet::from(["*".into()]))
                        .is_some()
            }
            [region, zone, sub] => {
                let zones = seen.entry(region.to_string()).or_default();
                zones.contains_key("*") || {
                    let subs = zones.entry(zone.to_string()).or_default();
                    subs.contains("*") || !subs.insert(sub.to_string())
                }
            }
            _ => false,
        };
        if overlaps {
            return Some((i, overlap));
        }
    }
    None
}
