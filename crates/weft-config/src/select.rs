//! The two visibility rules every part of Weft applies the same way:
//! `exportTo` (which namespaces see a resource) and label selectors (which
//! workloads a selector picks).

use std::collections::BTreeMap;

/// Whether a resource in namespace `own` with `export_to` is visible from
/// namespace `from`: empty means everywhere (Istio's default), `*` every
/// namespace, `.` its own, `~` none, else the named namespaces.
pub fn exported_to(export_to: &[String], own: &str, from: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|e| match e.as_str() {
            "*" => true,
            "." => own == from,
            "~" => false,
            ns => ns == from,
        })
}

/// Whether `labels` carry every label of `selector` (an empty selector
/// selects everything).
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_to_rules() {
        let list = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(exported_to(&[], "a", "b"));
        assert!(exported_to(&list(&["*"]), "a", "b"));
        assert!(exported_to(&list(&["."]), "a", "a"));
        assert!(!exported_to(&list(&["."]), "a", "b"));
        assert!(!exported_to(&list(&["~"]), "a", "a"));
        assert!(exported_to(&list(&["b"]), "a", "b"));
    }

    #[test]
    fn selectors() {
        let m = |s: &[(&str, &str)]| {
            s.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(selects(
            &m(&[("app", "a")]),
            &m(&[("app", "a"), ("v", "1")])
        ));
        assert!(!selects(
            &m(&[("app", "a"), ("v", "2")]),
            &m(&[("app", "a"), ("v", "1")])
        ));
        assert!(selects(&m(&[]), &m(&[("app", "a")])));
    }
}
