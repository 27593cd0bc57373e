//! Durations as Istio users write them: Go's syntax (`30s`, `1m`, `1h30m`,
//! `250ms`, `1.5s`), which is a superset of protobuf JSON's `"1.5s"`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A non-negative duration read from config.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub StdDuration);

/// Why a duration string was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (write e.g. \"10s\", \"250ms\", \"1m30s\", \"1h\")")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl Duration {
    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(StdDuration::from_millis(ms))
    }

    /// From seconds.
    pub const fn from_secs(s: u64) -> Self {
        Duration(StdDuration::from_secs(s))
    }

    /// The std duration.
    pub fn get(self) -> StdDuration {
        self.0
    }

    /// Whether the duration is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason| DurationError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(fail("empty"));
        }
        if s.starts_with('-') {
            return Err(fail("must not be negative"));
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        if s == "0" {
            return Ok(Duration::default());
        }
        let mut rest = s;
        let mut total: f64 = 0.0;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let num = &rest[..num_end];
            if num.is_empty() || num == "." || num.matches('.').count() > 1 {
                return Err(fail("expected a number"));
            }
            let value: f64 = num.parse().map_err(|_| fail("expected a number"))?;
            rest = &rest[num_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_end];
            rest = &rest[unit_end..];
            let scale = match unit {
                "ns" => 1e-9,
                "us" | "µs" | "μs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "" => return Err(fail("missing unit (ns, us, ms, s, m, h)")),
                _ => return Err(fail("unknown unit (use ns, us, ms, s, m or h)")),
            };
            total += value * scale;
        }
        if !total.is_finite() || total > 315_576_000_000.0 {
            return Err(fail("too large"));
        }
        Ok(Duration(StdDuration::from_secs_f64(total)))
    }
}

impl fmt::Display for Duration {
    /// Go's style: `1h30m0s`, `1.5s`, `250ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        if d < StdDuration::from_secs(1) {
            let ns = d.as_nanos();
            return if ns.is_multiple_of(1_000_000) {
                write!(f, "{}ms", ns / 1_000_000)
            } else if ns.is_multiple_of(1_000) {
                write!(f, "{}us", ns / 1_000)
            } else {
                write!(f, "{ns}ns")
            };
        }
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if h > 0 || m > 0 {
            write!(f, "{m}m")?;
        }
        let nanos = d.subsec_nanos();
        if nanos == 0 {
            write!(f, "{s}s")
        } else {
            let frac = format!("{nanos:09}");
            write!(f, "{s}.{}s", frac.trim_end_matches('0'))
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"10s\" or \"250ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> StdDuration {
        s.parse::<Duration>().map(Duration::get).expect(s)
    }

    #[test]
    fn parses_go_and_protobuf_spellings() {
        assert_eq!(d("10s"), StdDuration::from_secs(10));
        assert_eq!(d("1.5s"), StdDuration::from_millis(1500));
        assert_eq!(d("250ms"), StdDuration::from_millis(250));
        assert_eq!(d("1m30s"), StdDuration::from_secs(90));
        assert_eq!(d("1h"), StdDuration::from_secs(3600));
        assert_eq!(d("10us"), StdDuration::from_micros(10));
        assert_eq!(d("0"), StdDuration::ZERO);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "10", "s", "-1s", "1x", "1..2s", "1s2", "abc", "1e3s"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_like_go() {
        for (s, want) in [
            ("90s", "1m30s"),
            ("250ms", "250ms"),
            ("1.5s", "1.5s"),
            ("2h", "2h0m0s"),
            ("0s", "0s"),
        ] {
            assert_eq!(d(s).pipe(Duration).to_string(), want);
        }
    }

    trait Pipe: Sized {
        fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
            f(self)
        }
    }
    impl Pipe for StdDuration {}
}
