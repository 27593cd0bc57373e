//! A gRPC call's deadline as the route's timeout (Envoy's
//! `max_grpc_timeout`, which Istio sets on every route): the
//! `grpc-timeout` request header (gRPC over HTTP/2: an integer of at most
//! 8 digits and a unit, `H`, `M`, `S`, `m`, `u` or `n`) limits the
//! request, within the route's cap, and the upstream is told the limit in
//! force in the same header.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

/// The header gRPC clients send their deadline in.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The timeout of a gRPC request on a route with `max_grpc_timeout`
/// `cap` (Envoy's `FilterUtility::finalTimeout`): its `grpc-timeout`,
/// capped by `cap` unless `cap` is zero; without a deadline (or an
/// unreadable or zero one), `cap`; `None`: no limit.
pub fn timeout(headers: &HeaderMap, cap: Duration) -> Option<Duration> {
    let asked = headers
        .get(GRPC_TIMEOUT)
        .and_then(parse)
        .filter(|d| !d.is_zero());
    match (asked, cap.is_zero()) {
        (Some(d), true) => Some(d),
        (Some(d), false) => Some(d.min(cap)),
        (None, true) => None,
        (None, false) => Some(cap),
    }
}

/// A `grpc-timeout` value: `None` unless it is 1 to 8 digits and a unit.
pub fn parse(value: &HeaderValue) -> Option<Duration> {
    let bytes = value.as_bytes();
    let (&unit, digits) = bytes.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `d` as a `grpc-timeout` value, in milliseconds (as Envoy writes it),
/// or in the smallest coarser unit whose count fits in 8 digits.
pub fn format(d: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let ms = d.as_millis();
    let (n, unit) = if ms <= MAX {
        (ms, 'm')
    } else if d.as_secs() <= MAX as u64 {
        (u128::from(d.as_secs()), 'S')
    } else if d.as_secs() / 60 <= MAX as u64 {
        (u128::from(d.as_secs() / 60), 'M')
    } else {
        (u128::from(d.as_secs() / 3600).min(MAX), 'H')
    };
    HeaderValue::from_str(&format!("{n}{unit}")).unwrap_or_else(|_| HeaderValue::from_static("0m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(GRPC_TIMEOUT, HeaderValue::from_str(v).expect("value"));
        h
    }

    #[test]
    fn every_unit_parses_and_nonsense_does_not() {
        for (v, d) in [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("4S", Duration::from_secs(4)),
            ("250m", Duration::from_millis(250)),
            ("7u", Duration::from_micros(7)),
            ("99999999n", Duration::from_nanos(99_999_999)),
        ] {
            assert_eq!(parse(&HeaderValue::from_static(v)), Some(d), "{v}");
        }
        for v in ["", "m", "10", "1.5S", "-1S", "123456789m", "10x", "1 S"] {
            assert_eq!(parse(&HeaderValue::from_static(v)), None, "{v:?}");
        }
    }

    #[test]
    fn the_deadline_applies_within_the_cap() {
        let cap = Duration::from_secs(5);
        assert_eq!(timeout(&headers("1S"), cap), Some(Duration::from_secs(1)));
        assert_eq!(timeout(&headers("10S"), cap), Some(cap));
        assert_eq!(timeout(&HeaderMap::new(), cap), Some(cap));
        // A zero cap: the deadline alone, and without one no limit.
        assert_eq!(
            timeout(&headers("30S"), Duration::ZERO),
            Some(Duration::from_secs(30))
        );
        assert_eq!(timeout(&HeaderMap::new(), Duration::ZERO), None);
        // An unreadable or zero deadline counts as none.
        assert_eq!(timeout(&headers("soon"), cap), Some(cap));
        assert_eq!(timeout(&headers("0m"), Duration::ZERO), None);
    }

    #[test]
    fn limits_are_written_in_milliseconds_while_they_fit() {
        assert_eq!(format(Duration::from_millis(1500)), "1500m");
        assert_eq!(format(Duration::from_secs(100_000)), "100000S");
        assert_eq!(format(Duration::from_secs(200_000_000)), "3333333M");
        for d in [Duration::from_millis(1), Duration::from_secs(86_400)] {
            assert_eq!(parse(&format(d)), Some(d));
        }
    }
}
