//! Diagnostics: every problem found in a user's config, with a stable code,
//! where it is (file, line, resource, field path) and how to fix it.
//!
//! Codes are stable: tools and docs may rely on them. `WEFT00xx` are
//! problems reading a document, `WEFT00[2-4]x` problems inside one resource
//! (validation), `WEFT01xx` problems between resources (analysis). Each is
//! documented in `docs/messages.md`, which a test keeps in step with
//! [`Code::ALL`].

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::path::FieldPath;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    /// The resource is rejected (validation) or the mesh will not do what
    /// the config says (analysis).
    Error,
    /// Probably a mistake; the config still applies.
    Warning,
    /// Worth knowing.
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "Error",
            Severity::Warning => "Warning",
            Severity::Info => "Info",
        })
    }
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $sev:ident, $title:literal; )*) => {
        /// A stable diagnostic code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $( $(#[$doc])* $name, )*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$name),*];

            /// The code as printed (`WEFT0101`).
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$name => $code,)* }
            }

            /// The severity a diagnostic with this code has.
            pub fn severity(self) -> Severity {
                match self { $(Code::$name => Severity::$sev,)* }
            }

            /// A short name (`ReferencedSubsetNotFound`).
            pub fn name(self) -> &'static str {
                match self { $(Code::$name => stringify!($name),)* }
            }

            /// One line on what the code means.
            pub fn title(self) -> &'static str {
                match self { $(Code::$name => $title,)* }
            }
        }
    };
}

codes! {
    /// The file could not be read.
    UnreadableFile = "WEFT0001", Error, "a file or directory could not be read";
    /// YAML or JSON syntax error.
    SyntaxError = "WEFT0002", Error, "a document is not valid YAML or JSON";
    /// A document without apiVersion/kind, or of a kind Weft does not know.
    UnknownKind = "WEFT0003", Error, "a document's apiVersion/kind is missing or not a kind Weft reads";
    /// A kind Weft knows but in an apiVersion it doesn't accept.
    UnsupportedVersion = "WEFT0004", Error, "a known kind in an apiVersion Istio does not serve";
    /// A Kubernetes object that is not mesh config; skipped.
    IgnoredKind = "WEFT0005", Info, "a Kubernetes object that is not mesh configuration was skipped";
    /// Wrong type for a field (a list where an object belongs, a string for a number, ...).
    WrongType = "WEFT0006", Error, "a field has the wrong type";
    /// A field the resource does not have.
    UnknownField = "WEFT0007", Error, "a field the resource does not have (usually a typo)";
    /// metadata.name missing or not a valid Kubernetes name.
    InvalidName = "WEFT0008", Error, "metadata.name or metadata.namespace is missing or invalid";
    /// Two documents define the same kind/namespace/name.
    DuplicateResource = "WEFT0009", Error, "two documents define the same resource";
    /// An invalid document whose previous version stays in force.
    KeptLastGood = "WEFT0010", Info, "a document became invalid, so its resource's last good version stays in force";
    /// A field value Istio rejects.
    InvalidValue = "WEFT0020", Error, "a field's value is invalid";
    /// A required field is missing.
    RequiredField = "WEFT0021", Error, "a required field is missing";
    /// Fields that cannot be set together.
    ConflictingFields = "WEFT0022", Error, "fields that cannot be set together";
    /// Valid but almost certainly not what was meant.
    Suspicious = "WEFT0023", Warning, "a value that is valid but almost certainly a mistake";
    /// A deprecated field or value.
    Deprecated = "WEFT0024", Warning, "a deprecated field or value";
    /// A rule that can never match any request.
    NeverMatches = "WEFT0025", Error, "a rule that can never match";
    /// The field is accepted but Weft does not act on it yet.
    NotSupported = "WEFT0026", Info, "a field Weft reads but does not act on";
    /// A route destination subset not defined by any DestinationRule.
    ReferencedSubsetNotFound = "WEFT0101", Error, "a route names a subset that no DestinationRule defines for its host";
    /// A route destination host that matches no service.
    ReferencedHostNotFound = "WEFT0102", Error, "a route destination or mirror host matches no service in the mesh";
    /// A VirtualService names a Gateway that does not exist.
    ReferencedGatewayNotFound = "WEFT0103", Error, "a VirtualService names a Gateway that does not exist";
    /// Two VirtualServices claim the same host for the same gateway.
    ConflictingVirtualServiceHosts = "WEFT0104", Error, "two VirtualServices claim the same host on the same gateway";
    /// A DestinationRule subset selects no workload.
    SubsetSelectsNoWorkload = "WEFT0105", Warning, "a DestinationRule subset's labels select no workload of its host";
    /// DestinationRule client TLS contradicts a STRICT PeerAuthentication.
    MtlsConflict = "WEFT0106", Error, "DestinationRule TLS settings contradict the PeerAuthentication of the destination";
    /// A workload selector that selects no workload.
    SelectorMatchesNothing = "WEFT0107", Warning, "a workloadSelector/selector selects no workload";
    /// Two DestinationRules for the same host.
    ConflictingDestinationRules = "WEFT0108", Warning, "two DestinationRules for the same host in one namespace";
    /// Two ServiceEntries declare one host.
    ConflictingServiceEntries = "WEFT0109", Warning, "two ServiceEntries declare the same host and port";
    /// A DestinationRule for a host no service has.
    DestinationRuleHostNotFound = "WEFT0110", Warning, "a DestinationRule's host matches no service";
    /// A Gateway whose selector selects no gateway workload.
    GatewaySelectsNothing = "WEFT0111", Warning, "a Gateway's selector selects no workload to run it";
    /// A route after a catch-all route can never be reached.
    UnreachableRoute = "WEFT0112", Warning, "an http/tcp/tls route can never be reached because an earlier one matches everything";
    /// Two Sidecars for the same workloads.
    ConflictingSidecars = "WEFT0113", Error, "more than one Sidecar applies to the same workloads";
    /// A Sidecar egress host matching no service.
    SidecarEgressHostNotFound = "WEFT0114", Warning, "a Sidecar egress host matches no service";
    /// A route destination port that the service does not have.
    ReferencedPortNotFound = "WEFT0115", Error, "a route destination port is not a port of its service";
    /// A service with several ports and a destination without a port.
    DestinationPortRequired = "WEFT0116", Warning, "a destination of a multi-port service names no port";
    /// A port with no protocol Weft can determine.
    PortProtocolUnknown = "WEFT0117", Info, "a service port has no protocol; traffic on it will be sniffed";
    /// A WorkloadEntry that belongs to no service.
    WorkloadWithoutService = "WEFT0118", Info, "a WorkloadEntry is selected by no ServiceEntry";
    /// An AuthorizationPolicy names a namespace, host or port that does not exist.
    AuthorizationPolicyReference = "WEFT0119", Warning, "an AuthorizationPolicy names a namespace, host or port that nothing in the mesh has";
    /// A VirtualService host that none of its gateways serves.
    VirtualServiceHostNotInGateway = "WEFT0120", Warning, "a VirtualService host is served by none of the gateways it is bound to";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The resource a diagnostic is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceRef {
    /// `VirtualService`, ...
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One problem found in the config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Error, warning or info (normally the code's own).
    pub severity: Severity,
    /// The resource at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRef>,
    /// The file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// 1-based line in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Field path inside the resource (`spec.http[0].route[1].weight`).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_path")]
    pub path: Option<FieldPath>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

fn ser_path<S: serde::Serializer>(p: &Option<FieldPath>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(&p.to_string()),
        None => s.serialize_none(),
    }
}

impl Diagnostic {
    /// A diagnostic with the code's own severity and nothing located yet.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            resource: None,
            file: None,
            line: None,
            path: None,
            message: message.into(),
            hint: None,
        }
    }

    /// With a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// With a field path.
    pub fn at(mut self, path: FieldPath) -> Self {
        self.path = Some(path);
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The order diagnostics are printed in: by file, line, then code.
    pub fn sort_key(&self) -> impl Ord + '_ {
        (
            self.file.as_deref(),
            self.line,
            self.code,
            self.path.as_ref().map(|p| p.to_string()),
            &self.message,
        )
    }
}

impl fmt::Display for Diagnostic {
    /// `Error [WEFT0101] VirtualService default/reviews (reviews.yaml:12) spec.http[0]...: message`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.severity, self.code)?;
        if let Some(r) = &self.resource {
            write!(f, " {r}")?;
        }
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, " ({}:{line})", file.display())?,
            (Some(file), None) => write!(f, " ({})", file.display())?,
            _ => {}
        }
        match &self.path {
            Some(p) if !p.is_empty() => write!(f, " {p}: {}", self.message)?,
            _ => write!(f, " {}", self.message)?,
        }
        if let Some(h) = &self.hint {
            write!(f, "\n    hint: {h}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_documented_and_nothing_else() {
        let doc = include_str!("../../../docs/messages.md");
        let headings: Vec<&str> = doc.lines().filter_map(|l| l.strip_prefix("### ")).collect();
        let expected: Vec<String> = Code::ALL
            .iter()
            .map(|c| format!("{} {} ({})", c.as_str(), c.name(), c.severity()))
            .collect();
        assert_eq!(
            headings, expected,
            "docs/messages.md headings must list Code::ALL in order"
        );
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Code::ALL.len());
    }

    #[test]
    fn display_matches_the_documented_form() {
        let mut d = Diagnostic::new(
            Code::ReferencedSubsetNotFound,
            "subset \"v9\" is not defined",
        )
        .at(FieldPath::parse("spec.http[0].route[0].destination.subset"));
        d.resource = Some(ResourceRef {
            kind: "VirtualService".into(),
            namespace: "default".into(),
            name: "reviews".into(),
        });
        d.file = Some("reviews.yaml".into());
        d.line = Some(12);
        assert_eq!(
            d.to_string(),
            "Error [WEFT0101] VirtualService default/reviews (reviews.yaml:12) spec.http[0].route[0].destination.subset: subset \"v9\" is not defined"
        );
    }
}
