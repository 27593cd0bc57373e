//! `AuthorizationPolicy`: who may do what to a workload (ALLOW/DENY/AUDIT),
//! or which requests an external authorizer checks (CUSTOM).
//!
//! Also home of the checks every policy kind shares: selector vs
//! `targetRef(s)` ([`check_policy_scope`]).

use serde::{Deserialize, Serialize};

use crate::diag::Code;
use crate::security::{LabelSelector, PolicyTargetReference};
use crate::validate::{Validate, Validator, check_ip_or_cidr};

/// `AuthorizationPolicy` spec (`security.istio.io`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthorizationPolicy {
    /// Workloads the policy applies to (not with `targetRef(s)`); unset
    /// means every workload of the namespace (or mesh, in the root namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// A single Gateway API target (older form of `targetRefs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateway API targets (Gateway, GatewayClass, Service, ServiceEntry).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Rules; a request matches the policy when it matches any rule. No
    /// rules: ALLOW allows nothing, DENY/AUDIT/CUSTOM never trigger.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// What to do with a matching request (default `ALLOW`).
    pub action: AuthorizationAction,
    /// The extension provider that decides (CUSTOM only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<ExtensionProviderRef>,
}

/// `AuthorizationPolicy.Action`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizationAction {
    /// Allow matching requests (once any ALLOW policy applies, others are denied).
    #[default]
    Allow,
    /// Deny matching requests.
    Deny,
    /// Mark matching requests for auditing.
    Audit,
    /// Delegate matching requests to the extension provider.
    Custom,
}

/// `AuthorizationPolicy.ExtensionProvider`: a provider named in MeshConfig.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExtensionProviderRef {
    /// Name of a MeshConfig `extensionProviders` entry.
    pub name: String,
}

/// `Rule`: matches when one source, one operation and every condition match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rule {
    /// Sources (any matches); unset means any source. `Some(empty)` is an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<RuleFrom>>,
    /// Operations (any matches); unset means any operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<RuleTo>>,
    /// Extra conditions (all must match).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// `Rule.From`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuleFrom {
    /// The source (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// `Rule.To`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuleTo {
    /// The operation (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// `Source`: the peer of a request; all fields set must match (AND).
/// Values support exact, `prefix*`, `*suffix` and `*` (present) matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Source {
    /// Peer identities `<trust domain>/ns/<namespace>/sa/<account>` (mTLS).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Peer identities that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    /// JWT identities `<iss>/<sub>`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_principals: Vec<String>,
    /// JWT identities that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_request_principals: Vec<String>,
    /// Peer namespaces (from the peer certificate).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Peer namespaces that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    /// Peer service accounts, `account` or `namespace/account` (no wildcards,
    /// at most 16; not with principals or namespaces).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// Peer service accounts that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<String>,
    /// Source IPs or CIDRs of the connection.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    /// Source IPs or CIDRs that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    /// Original client IPs or CIDRs (X-Forwarded-For / PROXY protocol).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,
    /// Original client IPs or CIDRs that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
    /// Peer trust domains (from the peer certificate).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trust_domains: Vec<String>,
    /// Peer trust domains that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_trust_domains: Vec<String>,
}

/// `Operation`: what the request does; all fields set must match (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Operation {
    /// Request hosts (case-insensitive; HTTP only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Request hosts that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    /// Destination ports, as strings (`"8080"`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Destination ports that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    /// HTTP methods (case-sensitive: `GET`; gRPC is always `POST`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// HTTP methods that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    /// Normalized request paths without the query (`/api/*`, templates
    /// `/{*}/x`, `/{**}`); gRPC methods are `/package.Service/Method`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Paths that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// `Condition`: an attribute that must (or must not) have some value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    /// Attribute name (`request.headers[x-user]`, `source.ip`, ...).
    pub key: String,
    /// Values, any of which matches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Values none of which may match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

impl Source {
    fn is_empty(&self) -> bool {
        self.lists().iter().all(|(_, l)| l.is_empty())
    }

    fn lists(&self) -> [(&'static str, &Vec<String>); 14] {
        [
            ("principals", &self.principals),
            ("notPrincipals", &self.not_principals),
            ("requestPrincipals", &self.request_principals),
            ("notRequestPrincipals", &self.not_request_principals),
            ("namespaces", &self.namespaces),
            ("notNamespaces", &self.not_namespaces),
            ("serviceAccounts", &self.service_accounts),
            ("notServiceAccounts", &self.not_service_accounts),
            ("ipBlocks", &self.ip_blocks),
            ("notIpBlocks", &self.not_ip_blocks),
            ("remoteIpBlocks", &self.remote_ip_blocks),
            ("notRemoteIpBlocks", &self.not_remote_ip_blocks),
            ("trustDomains", &self.trust_domains),
            ("notTrustDomains", &self.not_trust_domains),
        ]
    }

    /// Whether the source names something a TCP connection has (not only
    /// HTTP/JWT attributes).
    fn has_tcp_fields(&self) -> bool {
        self.lists().iter().any(|(name, l)| {
            !l.is_empty() && !matches!(*name, "requestPrincipals" | "notRequestPrincipals")
        })
    }
}

impl Operation {
    fn lists(&self) -> [(&'static str, &Vec<String>); 8] {
        [
            ("hosts", &self.hosts),
            ("notHosts", &self.not_hosts),
            ("ports", &self.ports),
            ("notPorts", &self.not_ports),
            ("methods", &self.methods),
            ("notMethods", &self.not_methods),
            ("paths", &self.paths),
            ("notPaths", &self.not_paths),
        ]
    }
}

impl Validate for AuthorizationPolicy {
    fn validate(&self, v: &mut Validator) {
        check_policy_scope(v, &self.selector, &self.target_ref, &self.target_refs);
        let custom = self.action == AuthorizationAction::Custom;
        match self.action {
            AuthorizationAction::Custom => {
                if self.rules.is_empty() {
                    v.field("rules", |v| {
                        v.report(Code::NeverMatches, "CUSTOM action without `rules` is meaningless as it will never be triggered")
                            .hint("add an empty rule `rules: [{}]` to send every request to the provider");
                    });
                }
                match &self.provider {
                    None => {
                        v.required("provider")
                            .hint("CUSTOM needs `provider: {name: ...}` naming a MeshConfig extensionProvider");
                    }
                    Some(p) if p.name.is_empty() => {
                        v.field("provider", |v| {
                            v.required("name")
                                .hint("name a MeshConfig extensionProvider");
                        });
                    }
                    Some(_) => {}
                }
            }
            AuthorizationAction::Deny if self.rules.is_empty() => {
                v.field("rules", |v| {
                    v.report(
                        Code::NeverMatches,
                        "DENY action without `rules` is meaningless as it will never be triggered",
                    )
                    .hint("add an empty rule `rules: [{}]` if you want to deny every request");
                });
            }
            AuthorizationAction::Audit if self.rules.is_empty() => {
                v.field("rules", |v| {
                    v.warn("AUDIT action without `rules` never audits anything")
                        .hint("add an empty rule `rules: [{}]` to audit every request");
                });
            }
            _ => {}
        }
        if self.provider.is_some() && !custom {
            v.field("provider", |v| {
                v.error(format!(
                    "`provider` must not be with non CUSTOM action, found {:?}",
                    self.action
                ))
                .hint("set `action: CUSTOM`, or remove `provider`");
            });
        }
        v.each("rules", &self.rules, |v, rule| {
            rule.check(v, self.action);
        });
    }
}

impl Rule {
    fn check(&self, v: &mut Validator, action: AuthorizationAction) {
        let custom = action == AuthorizationAction::Custom;
        let mut from_exists = false;
        let mut tcp_in_from = false;
        if let Some(from) = &self.from {
            if from.is_empty() {
                v.field("from", |v| {
                    v.error("`from` must not be empty")
                        .hint("remove `from:` to match any source, or add a `- source: {...}`");
                });
            }
            v.each("from", from, |v, f| match &f.source {
                None => {
                    v.required("source")
                        .hint("each `from` entry is `- source: {...}`");
                }
                Some(src) => {
                    from_exists = true;
                    tcp_in_from |= src.has_tcp_fields();
                    v.field("source", |v| src.check(v, custom));
                }
            });
        }
        let mut to_exists = false;
        let mut tcp_in_to = false;
        if let Some(to) = &self.to {
            if to.is_empty() {
                v.field("to", |v| {
                    v.error("`to` must not be empty")
                        .hint("remove `to:` to match any operation, or add a `- operation: {...}`");
                });
            }
            v.each("to", to, |v, t| match &t.operation {
                None => {
                    v.required("operation")
                        .hint("each `to` entry is `- operation: {...}`");
                }
                Some(op) => {
                    to_exists = true;
                    tcp_in_to |= !op.ports.is_empty() || !op.not_ports.is_empty();
                    v.field("operation", |v| op.check(v));
                }
            });
        }
        v.each("when", &self.when, |v, c| c.check(v, custom));
        let http_only = (from_exists && !to_exists && !tcp_in_from) || (to_exists && !tcp_in_to);
        if http_only && action == AuthorizationAction::Deny {
            v.warn("configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port")
                .hint("add `ports` to the operation so the rule only applies to HTTP ports");
        }
    }
}

/// Fields of a source that a CUSTOM action cannot match on.
const CUSTOM_UNSUPPORTED_SOURCE: &[&str] = &[
    "namespaces",
    "notNamespaces",
    "serviceAccounts",
    "notServiceAccounts",
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "notRequestPrincipals",
];

impl Source {
    fn check(&self, v: &mut Validator, custom: bool) {
        if self.is_empty() {
            v.error("`from.source` must not be empty").hint(
                "name principals, namespaces, serviceAccounts, ipBlocks, ... or remove the entry",
            );
            return;
        }
        let has_sa = !self.service_accounts.is_empty() || !self.not_service_accounts.is_empty();
        let has_identity = !self.principals.is_empty()
            || !self.not_principals.is_empty()
            || !self.namespaces.is_empty()
            || !self.not_namespaces.is_empty();
        if has_sa && has_identity {
            v.conflict("Cannot set serviceAccounts with namespaces or principals")
                .hint("put serviceAccounts in a separate `- source:` entry (entries are ORed)");
        }
        for (name, list) in self.lists() {
            if custom && !list.is_empty() && CUSTOM_UNSUPPORTED_SOURCE.contains(&name) {
                v.field(name, |v| {
                    v.error(format!("{name} is currently not supported with CUSTOM action"))
                        .hint("match on ipBlocks, paths, hosts, ... here and check identities in the external authorizer");
                });
            }
            v.field(name, |v| match name {
                "serviceAccounts" | "notServiceAccounts" => check_service_accounts(v, list),
                "ipBlocks" | "notIpBlocks" | "remoteIpBlocks" | "notRemoteIpBlocks" => {
                    check_ips(v, list)
                }
                "namespaces" | "notNamespaces" => check_strings(v, list, check_namespace_value),
                _ => check_strings(v, list, |_, _| ()),
            });
        }
        check_negation(v, "principals", &self.principals, &self.not_principals);
        check_negation(
            v,
            "requestPrincipals",
            &self.request_principals,
            &self.not_request_principals,
        );
        check_negation(v, "namespaces", &self.namespaces, &self.not_namespaces);
        check_negation(
            v,
            "serviceAccounts",
            &self.service_accounts,
            &self.not_service_accounts,
        );
        check_negation(v, "ipBlocks", &self.ip_blocks, &self.not_ip_blocks);
        check_negation(
            v,
            "remoteIpBlocks",
            &self.remote_ip_blocks,
            &self.not_remote_ip_blocks,
        );
        check_negation(
            v,
            "trustDomains",
            &self.trust_domains,
            &self.not_trust_domains,
        );
    }
}

impl Operation {
    fn check(&self, v: &mut Validator) {
        if self.lists().iter().all(|(_, l)| l.is_empty()) {
            v.error("`to.operation` must not be empty")
                .hint("name hosts, ports, methods or paths, or remove the entry");
            return;
        }
        for (name, list) in self.lists() {
            v.field(name, |v| match name {
                "ports" | "notPorts" => check_ports(v, list),
                "methods" | "notMethods" => check_strings(v, list, check_method),
                "paths" | "notPaths" => check_paths(v, list),
                _ => check_strings(v, list, |_, _| ()),
            });
        }
        check_negation(v, "hosts", &self.hosts, &self.not_hosts);
        check_negation(v, "ports", &self.ports, &self.not_ports);
        check_negation(v, "methods", &self.methods, &self.not_methods);
        check_negation(v, "paths", &self.paths, &self.not_paths);
    }
}

/// Condition keys Istio supports (for suggestions).
const CONDITION_KEYS: &[&str] = &[
    "request.headers[]",
    "request.experimental.inline.headers[]",
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.serviceAccount",
    "source.principal",
    "source.trustDomain",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[]",
    "destination.ip",
    "destination.port",
    "connection.sni",
    "experimental.envoy.filters.",
];

impl Condition {
    fn check(&self, v: &mut Validator, custom: bool) {
        if self.key.is_empty() {
            v.required("key").hint(
                "name the attribute, e.g. `key: request.headers[x-user]` or `key: source.ip`",
            );
        }
        if self.values.is_empty() && self.not_values.is_empty() {
            v.field("values", |v| {
                v.report(
                    Code::RequiredField,
                    format!(
                        "at least one of `values` or `notValues` must be set for key {}",
                        self.key
                    ),
                );
            });
        }
        if self.key.is_empty() {
            return;
        }
        let key = self.key.as_str();
        if custom
            && (matches!(
                key,
                "source.namespace" | "source.serviceAccount" | "source.principal"
            ) || key.starts_with("request.auth."))
        {
            v.field("key", |v| {
                v.error(format!(
                    "{key} is currently not supported with CUSTOM action"
                ));
            });
        }
        let kind = match condition_kind(key) {
            Ok(kind) => kind,
            Err(msg) => {
                v.field("key", |v| {
                    let issue = v.error(msg);
                    let stem = key.split('[').next().unwrap_or(key);
                    if let Some(s) = crate::de::suggest(stem, CONDITION_KEYS) {
                        issue.hint(format!("did you mean {s:?}?"));
                    } else {
                        issue.hint("see https://istio.io/latest/docs/reference/config/security/conditions/");
                    }
                });
                ValueKind::Plain
            }
        };
        for (name, list) in [("values", &self.values), ("notValues", &self.not_values)] {
            v.field(name, |v| match kind {
                ValueKind::Ip => check_ips(v, list),
                ValueKind::Port => check_ports(v, list),
                ValueKind::ServiceAccount => check_service_accounts(v, list),
                ValueKind::Namespace => check_strings(v, list, check_namespace_value),
                ValueKind::Plain => check_strings(v, list, |_, _| ()),
            });
        }
        check_negation(v, "values", &self.values, &self.not_values);
    }
}

/// How the values of a condition key are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValueKind {
    Ip,
    Port,
    ServiceAccount,
    Namespace,
    Plain,
}

/// The kind of values `key` takes, or why the key is not supported.
fn condition_kind(key: &str) -> Result<ValueKind, String> {
    let map_key = |key: &str| -> Result<ValueKind, String> {
        let open = key.find('[');
        match open {
            Some(open) if key.ends_with(']') && open > 0 && open + 2 < key.len() => {
                Ok(ValueKind::Plain)
            }
            _ => Err(format!("bad key ({key}): should have format a[b]")),
        }
    };
    match key {
        "source.ip" | "remote.ip" | "destination.ip" => Ok(ValueKind::Ip),
        "destination.port" => Ok(ValueKind::Port),
        "source.serviceAccount" => Ok(ValueKind::ServiceAccount),
        "source.namespace" => Ok(ValueKind::Namespace),
        "source.principal"
        | "source.trustDomain"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Ok(ValueKind::Plain),
        "destination.namespace" => Err(format!(
            "attribute {key} is replaced by the metadata.namespace"
        )),
        "destination.name" | "destination.user" => Err(format!(
            "deprecated attribute {key}: only supported in v1alpha1"
        )),
        _ if key.starts_with("request.headers")
            || key.starts_with("request.experimental.inline.headers")
            || key.starts_with("request.auth.claims")
            || key.starts_with("experimental.envoy.filters.") =>
        {
            map_key(key)
        }
        _ if key.starts_with("destination.labels") => Err(format!(
            "attribute {key} is replaced by the workload selector"
        )),
        _ => Err(format!("unknown attribute: {key}")),
    }
}

// ---- value checks ---------------------------------------------------------

/// Checks each value is non-empty and uses `*` only as Istio matches it,
/// then runs `extra` on it.
fn check_strings(v: &mut Validator, list: &[String], extra: impl Fn(&mut Validator, &str)) {
    for (i, value) in list.iter().enumerate() {
        v.index(i, |v| {
            if value.is_empty() {
                v.error("empty value not allowed");
                return;
            }
            if let Some(msg) = wildcard_error(value) {
                v.error(msg)
                    .hint("use \"prefix*\", \"*suffix\" or \"*\"; list several values to match several patterns");
                return;
            }
            extra(v, value);
        });
    }
}

/// Why `value` uses `*` in a way Istio does not match as a wildcard.
fn wildcard_error(value: &str) -> Option<String> {
    let stars = value.matches('*').count();
    if value == "*" || stars == 0 {
        return None;
    }
    if stars == 1 && (value.starts_with('*') || value.ends_with('*')) {
        return None;
    }
    Some(format!(
        "{value:?}: '*' may only be the whole value, a prefix (\"*abc\") or a suffix (\"abc*\"); anywhere else it is matched as a literal '*'"
    ))
}

fn check_ips(v: &mut Validator, list: &[String]) {
    for (i, value) in list.iter().enumerate() {
        v.index(i, |v| {
            if value.is_empty() {
                v.error("empty value not allowed");
            } else {
                check_ip_or_cidr(v, value);
            }
        });
    }
}

fn check_ports(v: &mut Validator, list: &[String]) {
    for (i, value) in list.iter().enumerate() {
        v.index(i, |v| {
            if value.is_empty() {
                v.error("empty value not allowed");
                return;
            }
            let ok = value.bytes().all(|b| b.is_ascii_digit())
                && value.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
            if !ok {
                v.error(format!(
                    "bad port ({value}): port must be between 1-65535"
                ))
                .hint("ports are written as strings of digits, e.g. \"8080\"; wildcards are not supported");
            }
        });
    }
}

/// Checks serviceAccounts: `account` or `namespace/account`, no wildcards,
/// at most 16 values of at most 320 characters.
fn check_service_accounts(v: &mut Validator, list: &[String]) {
    if list.len() > 16 {
        v.error(format!(
            "may not have more than 16 values (found {})",
            list.len()
        ));
    }
    for (i, value) in list.iter().enumerate() {
        v.index(i, |v| {
            if value.is_empty() {
                v.error("empty value not allowed");
            } else if value.contains('*') {
                v.error(format!("wildcard not allowed in service accounts: {value:?}"))
                    .hint("list each account; use `namespaces` to match a whole namespace");
            } else if value.len() > 320 {
                v.error(format!("value cannot exceed 320 characters: {value:?}"));
            } else {
                let parts: Vec<&str> = value.split('/').collect();
                if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
                    v.error(format!(
                        "expected format 'serviceAccount' or 'namespace/serviceAccount', found {value:?}"
                    ));
                } else if parts
                    .iter()
                    .any(|p| p.bytes().any(|b| b.is_ascii_uppercase()))
                {
                    v.report(
                        Code::NeverMatches,
                        format!("{value:?} has upper-case letters: Kubernetes namespace and service account names are lower-case, so it never matches"),
                    );
                }
            }
        });
    }
}

/// A namespace value (wildcards aside) must be a possible namespace name.
fn check_namespace_value(v: &mut Validator, value: &str) {
    let bare = value.trim_matches('*');
    if !bare
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        v.report(
            Code::NeverMatches,
            format!("namespace {value:?} can never match: namespace names are lower-case letters, digits and '-'"),
        );
    }
}

/// Standard HTTP methods.
const HTTP_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];

fn check_method(v: &mut Validator, method: &str) {
    let upper = method.to_ascii_uppercase();
    if method != upper && HTTP_METHODS.contains(&upper.as_str()) {
        v.report(
            Code::NeverMatches,
            format!("method {method:?} never matches: HTTP methods are case-sensitive and clients send {upper:?}"),
        )
        .hint(format!("write {upper:?}"));
    } else if method.starts_with('/') {
        v.report(
            Code::NeverMatches,
            format!("method {method:?} never matches: a gRPC method is a path (gRPC requests all use POST)"),
        )
        .hint(format!("move it to `paths: [{method:?}]`"));
    }
}

/// Characters allowed in a literal segment of a path template (RFC 3986 pchar).
fn is_template_literal(seg: &str) -> bool {
    !seg.is_empty()
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@=".contains(&b))
}

fn check_paths(v: &mut Validator, list: &[String]) {
    for (i, path) in list.iter().enumerate() {
        v.index(i, |v| {
            if path.is_empty() {
                v.error("empty value not allowed");
                return;
            }
            let template = path.contains("{*}") || path.contains("{**}");
            if let Some(msg) = path_template_error(path, template) {
                v.error(msg)
                    .hint("templates are whole segments: `/{*}/x` matches one segment, a final `/{**}` any number");
                return;
            }
            if !template && let Some(msg) = wildcard_error(path) {
                v.error(msg).hint(
                    "use \"/prefix*\", \"*suffix\", or a path template such as \"/api/{*}/users\"",
                );
                return;
            }
            if !path.starts_with('/') && !path.starts_with('*') {
                v.report(
                    Code::NeverMatches,
                    format!("path {path:?} never matches: request paths start with '/'"),
                )
                .hint(format!("write \"/{path}\""));
            } else if path.contains('?') || path.contains('#') {
                v.report(
                    Code::NeverMatches,
                    format!("path {path:?} never matches: paths are matched without the query string or fragment"),
                )
                .hint("match query parameters with a `when` condition on a header, or drop the `?...` part");
            }
        });
    }
}

/// Istio's `CheckValidPathTemplate`: `{*}` and `{**}` only as whole
/// segments, `{**}` last, other segments plain literals.
fn path_template_error(path: &str, template: bool) -> Option<String> {
    let mut found_any = false;
    for seg in path.trim_matches('/').split('/') {
        match seg {
            "{*}" | "{**}" if found_any => {
                return Some(format!(
                    "invalid or unsupported path {path:?}: {{**}} is not the last operator"
                ));
            }
            "{*}" => continue,
            "{**}" => {
                found_any = true;
                continue;
            }
            _ => {}
        }
        if seg.contains(['{', '}']) {
            return Some(format!(
                "invalid or unsupported path {path:?}: contains '{{' or '}}' beyond a supported path template"
            ));
        }
        if template && !is_template_literal(seg) {
            return Some(format!(
                "invalid or unsupported path {path:?}: segment {seg:?} is not a valid literal in a path template"
            ));
        }
    }
    None
}

/// A positive list all of whose values are also in its negative list can
/// never match.
fn check_negation(v: &mut Validator, name: &str, pos: &[String], neg: &[String]) {
    if !pos.is_empty() && pos.iter().all(|p| neg.contains(p)) {
        let neg_name = if name == "values" {
            "notValues".to_string()
        } else {
            let mut chars = name.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            format!(
                "not{}{}",
                first.map(String::from).unwrap_or_default(),
                chars.as_str()
            )
        };
        v.field(name, |v| {
            v.report(
                Code::NeverMatches,
                format!("every value of {name} is also in {neg_name}: this can never match"),
            )
            .hint(format!("remove the values from {neg_name} or from {name}"));
        });
    }
}

// ---- shared by the policy kinds ---------------------------------------------

/// Allowed `targetRef` kinds and their groups (Istio's `allowedTargetRefs`).
const TARGET_KINDS: &[(&str, &str)] = &[
    ("", "Service"),
    ("core", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

/// Checks a policy's scope: selector labels, at most one of `selector`,
/// `targetRef` and `targetRefs`, and each target reference.
pub(crate) fn check_policy_scope(
    v: &mut Validator,
    selector: &Option<LabelSelector>,
    target_ref: &Option<PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    v.nested("selector", selector);
    let set = usize::from(selector.is_some())
        + usize::from(target_ref.is_some())
        + usize::from(!target_refs.is_empty());
    if set > 1 {
        v.conflict("only one of targetRefs or selector can be set")
            .hint("a policy applies either to workloads by `selector` or to Gateway API targets by `targetRefs`");
    }
    if let Some(r) = target_ref {
        v.field("targetRef", |v| check_target_ref(v, r));
    }
    v.each("targetRefs", target_refs, check_target_ref);
}

fn check_target_ref(v: &mut Validator, r: &PolicyTargetReference) {
    if r.name.is_empty() {
        v.required("name");
    }
    if r.kind.is_empty() {
        v.required("kind")
            .hint("one of Gateway, GatewayClass, Service, ServiceEntry");
    } else if !TARGET_KINDS.contains(&(r.group.as_str(), r.kind.as_str())) {
        let kind_known = TARGET_KINDS.iter().any(|(_, k)| *k == r.kind);
        let field = if kind_known { "group" } else { "kind" };
        let want_group = TARGET_KINDS
            .iter()
            .find(|(_, k)| *k == r.kind)
            .map(|(g, _)| *g);
        v.field(field, |v| {
            let issue = v.error(format!(
                "targetRef must be to a Service (group \"\"), ServiceEntry (networking.istio.io), Gateway or GatewayClass (gateway.networking.k8s.io) but was {:?}/{:?}",
                r.group, r.kind
            ));
            if let Some(g) = want_group {
                issue.hint(format!("{} is in group {g:?}", r.kind));
            }
        });
    }
    if !r.namespace.is_empty() && r.namespace != v.namespace() {
        v.field("namespace", |v| {
            v.error("cross namespace referencing is not currently supported")
                .hint("omit `namespace`: the target must be in the policy's own namespace");
        });
    }
}

#[cfg(test)]
mod tests;
