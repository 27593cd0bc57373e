//! Host names as Istio resolves them: short names completed with the
//! resource's namespace, and wildcard matching.

/// The cluster DNS domain short names are completed with.
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// Completes a short host name as Istio does (`ResolveShortnameToFQDN`):
/// a name without dots, like `reviews`, means
/// `reviews.<namespace>.svc.cluster.local`; anything with a dot, and
/// wildcards, are taken as written. Comparison is case-insensitive, so the
/// result is lowercase.
pub fn fqdn(host: &str, namespace: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host == "*" || host.contains('.') || namespace.is_empty() {
        host
    } else {
        format!("{host}.{namespace}.svc.{DEFAULT_DOMAIN}")
    }
}

/// Whether `pattern` (possibly `*` or `*.suffix`) matches the concrete or
/// wildcard host `host`: `*.example.com` matches `a.example.com` and
/// `*.b.example.com`; a wildcard host only matches an equal-or-wider
/// pattern.
pub fn matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" || pattern == host {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => match host.strip_prefix('*') {
            Some(host_suffix) => host_suffix.ends_with(suffix),
            None => host.ends_with(suffix) && host.len() > suffix.len(),
        },
        None => false,
    }
}

/// Whether two host patterns can match a common host.
pub fn overlap(a: &str, b: &str) -> bool {
    matches(a, b) || matches(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_complete_with_the_namespace() {
        assert_eq!(fqdn("reviews", "shop"), "reviews.shop.svc.cluster.local");
        assert_eq!(fqdn("Reviews", "shop"), "reviews.shop.svc.cluster.local");
        assert_eq!(
            fqdn("reviews.shop.svc.cluster.local", "x"),
            "reviews.shop.svc.cluster.local"
        );
        assert_eq!(fqdn("api.example.com", "x"), "api.example.com");
        assert_eq!(fqdn("*", "x"), "*");
    }

    #[test]
    fn wildcards() {
        assert!(matches("*", "a.b"));
        assert!(matches("*.example.com", "a.example.com"));
        assert!(matches("*.example.com", "a.b.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(matches("*.example.com", "*.a.example.com"));
        assert!(!matches("*.a.example.com", "*.example.com"));
        assert!(overlap("*.a.example.com", "*.example.com"));
        assert!(!matches("a.example.com", "b.example.com"));
    }
}
