//! A cluster's outlier detection settings: CDS `outlier_detection` in
//! Weft's own form, with Envoy's defaults, checked once.

use std::time::Duration;

use weft_xds::pb::envoy::config::cluster::v3::OutlierDetection;

use crate::cluster::proto_duration;

/// A cluster's outlier detection (CDS `outlier_detection`), with Envoy's
/// defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OutlierConfig {
    /// How often ejections are reviewed (default 10 s).
    pub interval: Duration,
    /// An ejection lasts this times the endpoint's ejection count (default 30 s).
    pub base_ejection_time: Duration,
    /// The longest ejection (default 300 s, at least `base_ejection_time`).
    pub max_ejection_time: Duration,
    /// The most endpoints ejected at once, in percent of the cluster
    /// (default 10; one ejection is always allowed).
    pub max_ejection_percent: u32,
    /// Consecutive 5xx (and, unsplit, local-origin failures) to eject (default 5).
    pub consecutive_5xx: u32,
    /// Percent chance such an ejection happens (default 100).
    pub enforcing_consecutive_5xx: u32,
    /// Consecutive 502/503/504 to eject (default 5).
    pub consecutive_gateway_failure: u32,
    /// Percent chance such an ejection happens (default 0).
    pub enforcing_consecutive_gateway_failure: u32,
    /// Whether connect failures, resets and timeouts count apart from the
    /// upstream's answers (default false: they count as 503/504).
    pub split_external_local_origin_errors: bool,
    /// Consecutive local-origin failures to eject, when split (default 5).
    pub consecutive_local_origin_failure: u32,
    /// Percent chance such an ejection happens (default 100).
    pub enforcing_consecutive_local_origin_failure: u32,
    /// Success-rate ejection: endpoints needed (default 5).
    pub success_rate_minimum_hosts: u32,
    /// Success-rate ejection: requests an endpoint needs in an interval (default 100).
    pub success_rate_request_volume: u32,
    /// Success-rate ejection: below `mean - factor / 1000 × stdev` (default 1900).
    pub success_rate_stdev_factor: u32,
    /// Percent chance a success-rate ejection happens (default 100).
    pub enforcing_success_rate: u32,
    /// Failure-percentage ejection: at or above this failure percent (default 85).
    pub failure_percentage_threshold: u32,
    /// Percent chance a failure-percentage ejection happens (default 0).
    pub enforcing_failure_percentage: u32,
    /// Failure-percentage ejection: endpoints needed (default 5).
    pub failure_percentage_minimum_hosts: u32,
    /// Failure-percentage ejection: requests an endpoint needs (default 50).
    pub failure_percentage_request_volume: u32,
    /// Eject one endpoint whatever `max_ejection_percent` says (default false).
    pub always_eject_one_host: bool,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            consecutive_5xx: 5,
            enforcing_consecutive_5xx: 100,
            consecutive_gateway_failure: 5,
            enforcing_consecutive_gateway_failure: 0,
            split_external_local_origin_errors: false,
            consecutive_local_origin_failure: 5,
            enforcing_consecutive_local_origin_failure: 100,
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 100,
            success_rate_stdev_factor: 1900,
            enforcing_success_rate: 100,
            failure_percentage_threshold: 85,
            enforcing_failure_percentage: 0,
            failure_percentage_minimum_hosts: 5,
            failure_percentage_request_volume: 50,
            always_eject_one_host: false,
        }
    }
}

impl TryFrom<&OutlierDetection> for OutlierConfig {
    type Error = String;

    fn try_from(o: &OutlierDetection) -> Result<Self, String> {
        let d = OutlierConfig::default();
        let n = |v: Option<u32>, default: u32| v.unwrap_or(default);
        let pct = |name: &str, v: Option<u32>, default: u32| {
            let v = v.unwrap_or(default);
            if v > 100 {
                Err(format!("outlier_detection.{name} {v} is above 100"))
            } else {
                Ok(v)
            }
        };
        let time =
            |name: &str, v: &Option<weft_xds::pb::google::protobuf::Duration>, default| match v {
                None => Ok(default),
                Some(v) => proto_duration(v).map_err(|e| format!("outlier_detection.{name} {e}")),
            };
        let interval = time("interval", &o.interval, d.interval)?;
        if interval.is_zero() {
            return Err("outlier_detection.interval must be above zero".into());
        }
        let base_ejection_time = time(
            "base_ejection_time",
            &o.base_ejection_time,
            d.base_ejection_time,
        )?;
        let max_ejection_time = time(
            "max_ejection_time",
            &o.max_ejection_time,
            d.max_ejection_time,
        )?
        .max(base_ejection_time);
        Ok(OutlierConfig {
            interval,
            base_ejection_time,
            max_ejection_time,
            max_ejection_percent: pct(
                "max_ejection_percent",
                o.max_ejection_percent.map(|v| v.value),
                d.max_ejection_percent,
            )?,
            consecutive_5xx: n(o.consecutive_5xx.map(|v| v.value), d.consecutive_5xx),
            enforcing_consecutive_5xx: pct(
                "enforcing_consecutive_5xx",
                o.enforcing_consecutive_5xx.map(|v| v.value),
                d.enforcing_consecutive_5xx,
            )?,
            consecutive_gateway_failure: n(
                o.consecutive_gateway_failure.map(|v| v.value),
                d.consecutive_gateway_failure,
            ),
            enforcing_consecutive_gateway_failure: pct(
                "enforcing_consecutive_gateway_failure",
                o.enforcing_consecutive_gateway_failure.map(|v| v.value),
                d.enforcing_consecutive_gateway_failure,
            )?,
            split_external_local_origin_errors: o.split_external_local_origin_errors,
            consecutive_local_origin_failure: n(
                o.consecutive_local_origin_failure.map(|v| v.value),
                d.consecutive_local_origin_failure,
            ),
            enforcing_consecutive_local_origin_failure: pct(
                "enforcing_consecutive_local_origin_failure",
                o.enforcing_consecutive_local_origin_failure
                    .map(|v| v.value),
                d.enforcing_consecutive_local_origin_failure,
            )?,
            success_rate_minimum_hosts: n(
                o.success_rate_minimum_hosts.map(|v| v.value),
                d.success_rate_minimum_hosts,
            ),
            success_rate_request_volume: n(
                o.success_rate_request_volume.map(|v| v.value),
                d.success_rate_request_volume,
            ),
            success_rate_stdev_factor: n(
                o.success_rate_stdev_factor.map(|v| v.value),
                d.success_rate_stdev_factor,
            ),
            enforcing_success_rate: pct(
                "enforcing_success_rate",
                o.enforcing_success_rate.map(|v| v.value),
                d.enforcing_success_rate,
            )?,
            failure_percentage_threshold: pct(
                "failure_percentage_threshold",
                o.failure_percentage_threshold.map(|v| v.value),
                d.failure_percentage_threshold,
            )?,
            enforcing_failure_percentage: pct(
                "enforcing_failure_percentage",
                o.enforcing_failure_percentage.map(|v| v.value),
                d.enforcing_failure_percentage,
            )?,
            failure_percentage_minimum_hosts: n(
                o.failure_percentage_minimum_hosts.map(|v| v.value),
                d.failure_percentage_minimum_hosts,
            ),
            failure_percentage_request_volume: n(
                o.failure_percentage_request_volume.map(|v| v.value),
                d.failure_percentage_request_volume,
            ),
            always_eject_one_host: o.always_eject_one_host.is_some_and(|v| v.value),
        })
    }
}
