//! Validation of one resource, as strict as Istio's admission webhook.
//!
//! Each spec type implements [`Validate`]; it walks its fields with a
//! [`Validator`], which tracks the field path so every issue names the
//! field (`spec.http[0].route[1].weight`). The loader turns issues into
//! [`Diagnostic`](crate::diag::Diagnostic)s with file and line.
//! Shared checks (hosts, ports, regexes, labels, CIDRs) live here so every
//! kind says the same thing about the same mistake.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::diag::Code;
use crate::path::{FieldPath, Seg};

/// A resource spec that can check itself.
pub trait Validate {
    /// Reports every problem through `v`.
    fn validate(&self, v: &mut Validator);
}

/// One problem found while validating, at a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Stable code (its severity decides whether the resource is rejected).
    pub code: Code,
    /// The field at fault.
    pub path: FieldPath,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// Walks a resource, tracking the current field path and collecting issues.
#[derive(Debug)]
pub struct Validator {
    path: FieldPath,
    namespace: String,
    issues: Vec<Issue>,
}

impl Validator {
    /// A validator for a resource in `namespace`, starting at `spec`.
    pub fn new(namespace: &str) -> Self {
        Validator {
            path: FieldPath::root().field("spec"),
            namespace: namespace.to_string(),
            issues: Vec::new(),
        }
    }

    /// A validator for a document without a `spec` level (MeshConfig),
    /// starting at its root.
    pub fn at_root(namespace: &str) -> Self {
        Validator {
            path: FieldPath::root(),
            namespace: namespace.to_string(),
            issues: Vec::new(),
        }
    }

    /// The namespace of the resource being validated.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The current path.
    pub fn path(&self) -> &FieldPath {
        &self.path
    }

    /// The issues found.
    pub fn into_issues(self) -> Vec<Issue> {
        self.issues
    }

    /// The issues found so far.
    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// Runs `f` inside field `name`.
    pub fn field<R>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(Seg::Field(name.to_string()));
        let r = f(self);
        self.path.pop();
        r
    }

    /// Runs `f` inside list element `i`.
    pub fn index<R>(&mut self, i: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(Seg::Index(i));
        let r = f(self);
        self.path.pop();
        r
    }

    /// Runs `f` inside map key `key`.
    pub fn key<R>(&mut self, key: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(Seg::Key(key.to_string()));
        let r = f(self);
        self.path.pop();
        r
    }

    /// Runs `f` for each element of list field `name`.
    pub fn each<T>(&mut self, name: &str, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.field(name, |v| {
            for (i, item) in items.iter().enumerate() {
                v.index(i, |v| f(v, item));
            }
        });
    }

    /// Validates an optional nested field `name`.
    pub fn nested<T: Validate>(&mut self, name: &str, value: &Option<T>) {
        if let Some(value) = value {
            self.field(name, |v| value.validate(v));
        }
    }

    /// Reports `code` at the current path; returns the issue so a hint
    /// can be added.
    pub fn report(&mut self, code: Code, message: impl Into<String>) -> &mut Issue {
        self.issues.push(Issue {
            code,
            path: self.path.clone(),
            message: message.into(),
            hint: None,
        });
        let last = self.issues.len() - 1;
        &mut self.issues[last]
    }

    /// An invalid value at the current path.
    pub fn error(&mut self, message: impl Into<String>) -> &mut Issue {
        self.report(Code::InvalidValue, message)
    }

    /// A warning (valid, but suspicious) at the current path.
    pub fn warn(&mut self, message: impl Into<String>) -> &mut Issue {
        self.report(Code::Suspicious, message)
    }

    /// Field `name` (below the current path) is required and missing.
    pub fn required(&mut self, name: &str) -> &mut Issue {
        self.field(name, |_| ());
        let path = self.path.field(name);
        self.issues.push(Issue {
            code: Code::RequiredField,
            path,
            message: "Required value".to_string(),
            hint: None,
        });
        let last = self.issues.len() - 1;
        &mut self.issues[last]
    }

    /// Fields that cannot be set together, reported at the current path.
    pub fn conflict(&mut self, message: impl Into<String>) -> &mut Issue {
        self.report(Code::ConflictingFields, message)
    }
}

impl Issue {
    /// Adds a hint.
    pub fn hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }
}

// ---- shared checks -------------------------------------------------------

/// Whether `s` is a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ≤ 63).
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain (labels joined by dots, ≤ 253).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Checks a host name as Istio's `ValidateWildcardDomain`: `*`,
/// `*.example.com`, `*-api.example.com` or a DNS name (labels of letters,
/// digits and `-`, up to 255 characters). Short names like `reviews` are
/// valid: they are completed with the resource's namespace. With
/// `allow_wildcard` false, any wildcard is an error.
pub fn check_host(v: &mut Validator, host: &str, allow_wildcard: bool) {
    if !allow_wildcard && host.contains('*') {
        v.error(if host == "*" {
            "hostname cannot be wildcard".to_string()
        } else {
            format!("hostname {host:?} cannot be a wildcard here")
        })
        .hint("name a concrete host such as \"api.example.com\"");
        return;
    }
    check_wildcard_host(v, host);
}

/// Why `host` is not a DNS name with an optional wildcard first label
/// (Istio's `ValidateWildcardDomain`: `*`, `*.example.com`,
/// `*-api.example.com`, `reviews`, `Reviews.Default.`), if it is not.
pub fn wildcard_domain_error(host: &str) -> Option<(String, &'static str)> {
    const LABEL_HINT: &str = "host labels are letters, digits and '-', separated by dots";
    if host.is_empty() {
        return Some((
            "host must not be empty".into(),
            "name a host such as \"reviews\" or \"api.example.com\"",
        ));
    }
    if host.len() > 255 {
        return Some((
            format!("host {host:?} is longer than 255 characters"),
            "a DNS name has at most 255 characters",
        ));
    }
    let (first, rest) = match host.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (host, None),
    };
    let first_ok = match first.strip_prefix('*') {
        Some("") => true,
        Some(partial) => {
            let label = partial.strip_prefix('-').unwrap_or(partial);
            is_dns_label(label)
        }
        None => is_dns_label(first),
    };
    if !first_ok {
        let hint = if first.contains('*') {
            "a wildcard may only start the first label: \"*\", \"*.example.com\" or \"*-api.example.com\""
        } else {
            LABEL_HINT
        };
        return Some((
            format!("invalid host {host:?}: {first:?} is not a valid DNS label"),
            hint,
        ));
    }
    let rest = rest?;
    let labels: Vec<&str> = rest.split('.').collect();
    let last = labels.len() - 1;
    if !labels[last].is_empty() && labels[last].bytes().all(|b| b.is_ascii_digit()) {
        return Some((
            format!(
                "invalid host {host:?}: top level domain {:?} cannot be all-numeric",
                labels[last]
            ),
            "IP addresses are not host names here",
        ));
    }
    for (i, label) in labels.iter().enumerate() {
        if i == last && label.is_empty() {
            break; // a trailing dot (`istio.io.`) is allowed
        }
        if label.contains('*') {
            return Some((
                format!("invalid host {host:?}: a wildcard may only start the first label"),
                "write \"*.example.com\" rather than \"api.*.com\"",
            ));
        }
        if !is_dns_label(label) {
            return Some((
                format!("invalid host {host:?}: {label:?} is not a valid DNS label"),
                LABEL_HINT,
            ));
        }
    }
    None
}

/// A DNS label, either case (`[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?`).
pub fn is_dns_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// Checks a host that may have a wildcard first label; reports at the
/// current path.
pub fn check_wildcard_host(v: &mut Validator, host: &str) {
    if let Some((msg, hint)) = wildcard_domain_error(host) {
        v.error(msg).hint(hint);
    }
}

/// Checks a port number is in 1..=65535.
pub fn check_port(v: &mut Validator, port: u32) {
    if port == 0 || port > 65535 {
        v.error(format!(
            "port number {port} is invalid: port must be between 1-65535"
        ));
    }
}

/// Checks an RE2 regular expression (what Envoy and Istio accept: no
/// look-around, no back-references).
pub fn check_regex(v: &mut Validator, re: &str) {
    if let Err(e) = regex_syntax::Parser::new().parse(re) {
        let detail = match &e {
            regex_syntax::Error::Parse(p) => p.kind().to_string(),
            regex_syntax::Error::Translate(t) => t.kind().to_string(),
            _ => e.to_string(),
        };
        v.error(format!("\"{re}\" is not a valid regex: {detail}"))
            .hint(
                "regexes use RE2 syntax: no look-ahead/behind ((?=, (?!, (?<=) or back-references",
            );
    }
}

/// Checks an IP address or CIDR block (`10.0.0.1`, `10.0.0.0/8`, `::1`).
pub fn check_ip_or_cidr(v: &mut Validator, s: &str) {
    if s.parse::<IpAddr>().is_ok() || s.parse::<ipnet::IpNet>().is_ok() {
        return;
    }
    v.error(format!("{s:?} is not an IP address or CIDR block"));
}

/// Checks a label key (`prefix/name` as Kubernetes allows).
fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns1123_subdomain(p)
    {
        return Some(format!("label key prefix {p:?} must be a DNS subdomain"));
    }
    if !is_label_value(name) || name.is_empty() {
        return Some(format!(
            "label key {key:?} is invalid: names are up to 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
        ));
    }
    None
}

/// Whether `s` is a valid Kubernetes label value (may be empty).
pub fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric())
}

/// Checks selector labels: valid keys and values, no wildcards.
pub fn check_selector_labels(v: &mut Validator, labels: &BTreeMap<String, String>) {
    for (k, val) in labels {
        v.key(k, |v| {
            if k.contains('*') || val.contains('*') {
                v.error("wildcard is not supported in selector").hint("selectors match labels exactly");
            } else if let Some(e) = label_key_error(k) {
                v.error(e);
            } else if !is_label_value(val) {
                v.error(format!(
                    "label value {val:?} is invalid: up to 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
                ));
            }
        });
    }
}

/// Checks a percentage is within 0..=100.
pub fn check_percent(v: &mut Validator, value: f64) {
    if !(0.0..=100.0).contains(&value) || value.is_nan() {
        v.error(format!("percentage {value} must be between 0 and 100"));
    }
}

/// Checks field `exportTo` (Istio's `validateExportTo`): see
/// [`check_export_list`]. `allow_none` allows `~` (ServiceEntries only).
pub fn check_export_to(v: &mut Validator, export_to: &[String], allow_none: bool) {
    if !export_to.is_empty() {
        v.field("exportTo", |v| check_export_list(v, export_to, allow_none));
    }
}

/// Checks an export list at the current path: entries are `.`, `*`, `~`
/// or namespace names, without duplicates (`.` and the resource's own
/// namespace are the same), `*` and `~` only alone, `~` only where
/// `allow_none`.
pub fn check_export_list(v: &mut Validator, list: &[String], allow_none: bool) {
    let own = v.namespace().to_string();
    let resolve = |e: &str| {
        if e == "." && !own.is_empty() {
            own.clone()
        } else {
            e.to_string()
        }
    };
    for (i, ns) in list.iter().enumerate() {
        v.index(i, |v| {
            if !matches!(ns.as_str(), "." | "*" | "~") && !is_dns1123_label(ns) {
                v.error(format!(
                    "exportTo {ns:?} must be \".\", \"*\", \"~\" or a namespace name"
                ));
            }
            if ns == "~" && !allow_none {
                v.error("exportTo \"~\" (none) is only allowed for ServiceEntries")
                    .hint("use \".\" to keep the resource in its own namespace");
            }
            if list[..i].contains(ns) {
                v.error(format!("duplicate entry {ns:?} in exportTo"));
            } else if list[..i].iter().any(|p| resolve(p) == resolve(ns)) {
                v.error(format!(
                    "duplicate entries in exportTo: \".\" and the current namespace {own:?}"
                ));
            }
        });
    }
    if list.len() > 1 && list.iter().any(|n| n == "~") {
        v.error("\"~\" (export to nobody) cannot be combined with other namespaces");
    }
    if list.len() > 1 && list.iter().any(|n| n == "*") {
        v.error("cannot have both public (*) and non-public exportTo values")
            .hint("\"*\" already exports to every namespace");
    }
}

/// Istio's `ValidateDuration`: at least 1ms, in whole milliseconds.
pub fn check_duration(v: &mut Validator, d: crate::duration::Duration) {
    let std = d.get();
    if std < std::time::Duration::from_millis(1) {
        v.error(format!("duration {d} must be at least 1ms"))
            .hint("durations are written like \"250ms\", \"5s\" or \"1m\"");
    } else if !std.subsec_nanos().is_multiple_of(1_000_000) {
        v.error(format!(
            "duration {d}: only durations to ms precision are supported"
        ));
    }
}

/// [`check_duration`] on optional field `name`, if set.
pub fn check_duration_field(v: &mut Validator, name: &str, d: Option<crate::duration::Duration>) {
    if let Some(d) = d {
        v.field(name, |v| check_duration(v, d));
    }
}

/// Whether `s` is an HTTP token (RFC 9110): what a header or cookie name is.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks an HTTP header name (no pseudo-headers like `:authority`).
pub fn check_header_name(v: &mut Validator, name: &str) {
    if name.is_empty() {
        v.error("header name must not be empty");
    } else if !is_token(name) {
        v.error(format!(
            "header name {name:?} is invalid: use letters, digits and !#$%&'*+-.^_`|~ (no spaces, no ':' pseudo-headers)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(f: impl FnOnce(&mut Validator)) -> Vec<String> {
        let mut v = Validator::new("default");
        f(&mut v);
        v.into_issues()
            .into_iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect()
    }

    #[test]
    fn hosts() {
        for ok in [
            "reviews",
            "reviews.default.svc.cluster.local",
            "*.example.com",
            "*",
            "Foo.COM",
            "a-b.c",
        ] {
            assert!(messages(|v| check_host(v, ok, true)).is_empty(), "{ok}");
        }
        for bad in [
            "", "foo*", "a..b", "-a.com", "a_b.com", "*.*.com", "a.*.com",
        ] {
            assert_eq!(messages(|v| check_host(v, bad, true)).len(), 1, "{bad}");
        }
        assert_eq!(
            messages(|v| check_host(v, "*", false)),
            vec!["spec: hostname cannot be wildcard"]
        );
    }

    #[test]
    fn regexes_use_re2_syntax() {
        assert!(messages(|v| check_regex(v, "^/api/v[0-9]+/.*$")).is_empty());
        let m = messages(|v| v.field("regex", |v| check_regex(v, "^(?!.<path>.).*")));
        assert_eq!(m.len(), 1);
        assert!(
            m[0].starts_with("spec.regex: \"^(?!.<path>.).*\" is not a valid regex"),
            "{m:?}"
        );
    }

    #[test]
    fn ports_and_cidrs() {
        assert_eq!(messages(|v| check_port(v, 0)).len(), 1);
        assert_eq!(messages(|v| check_port(v, 65536)).len(), 1);
        assert!(messages(|v| check_port(v, 443)).is_empty());
        assert!(messages(|v| check_ip_or_cidr(v, "10.0.0.0/8")).is_empty());
        assert!(messages(|v| check_ip_or_cidr(v, "::1")).is_empty());
        assert_eq!(messages(|v| check_ip_or_cidr(v, "1.2.3.4/99")).len(), 1);
    }

    #[test]
    fn selector_labels() {
        let mut l = BTreeMap::new();
        l.insert("app".to_string(), "*".to_string());
        assert_eq!(
            messages(|v| check_selector_labels(v, &l)),
            vec!["spec[app]: wildcard is not supported in selector"]
        );
        l.clear();
        l.insert("app.kubernetes.io/name".to_string(), "reviews".to_string());
        assert!(messages(|v| check_selector_labels(v, &l)).is_empty());
    }

    #[test]
    fn export_to() {
        let list = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(messages(|v| check_export_to(v, &list(&[".", "foo"]), false)).is_empty());
        assert_eq!(
            messages(|v| check_export_to(v, &list(&["foo", "foo"]), false)).len(),
            1
        );
        assert_eq!(
            messages(|v| check_export_to(v, &list(&["~", "foo"]), true)).len(),
            1
        );
    }
}
