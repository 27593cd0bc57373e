//! The resources Weft reads: kinds, their accepted apiVersions, metadata,
//! and one loaded [`Resource`] with where it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::diag::ResourceRef;
use crate::networking::{
    DestinationRule, EnvoyFilter, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
    WorkloadGroup,
};
use crate::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use crate::telemetry::Telemetry;
use crate::validate::{Validate, Validator};
use crate::yaml::Node;

const NETWORKING: &str = "networking.istio.io";
const SECURITY: &str = "security.istio.io";
const TELEMETRY: &str = "telemetry.istio.io";

macro_rules! kinds {
    ($( $kind:ident => $group:ident [$($ver:literal),*] ),* $(,)?) => {
        /// A kind of Istio resource.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Kind {
            $( #[doc = concat!("`", stringify!($kind), "`")] $kind, )*
        }

        impl Kind {
            /// Every kind.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),*];

            /// The kind's name as written in `kind:`.
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$kind => stringify!($kind),)* }
            }

            /// The API group.
            pub fn group(self) -> &'static str {
                match self { $(Kind::$kind => $group,)* }
            }

            /// The versions of the group that serve this kind.
            pub fn versions(self) -> &'static [&'static str] {
                match self { $(Kind::$kind => &[$($ver),*],)* }
            }
        }

        /// A resource's spec, typed by kind.
        #[derive(Clone, Debug, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum Spec {
            $( #[doc = concat!("`", stringify!($kind), "`")] $kind(Box<$kind>), )*
        }

        impl Spec {
            /// The kind of this spec.
            pub fn kind(&self) -> Kind {
                match self { $(Spec::$kind(_) => Kind::$kind,)* }
            }

            pub(crate) fn validate(&self, v: &mut Validator) {
                match self { $(Spec::$kind(s) => s.validate(v),)* }
            }

            pub(crate) fn from_node(
                kind: Kind,
                node: &Node,
                path: crate::path::FieldPath,
            ) -> Result<(Spec, Vec<crate::de::UnknownField>), crate::de::DeError> {
                match kind {
                    $(Kind::$kind => crate::de::from_node::<$kind>(node, path).map(|(s, u)| (Spec::$kind(Box::new(s)), u)),)*
                }
            }

            /// An empty spec of `kind` (for `spec: {}`).
            pub(crate) fn default_for(kind: Kind) -> Spec {
                match kind { $(Kind::$kind => Spec::$kind(Box::default()),)* }
            }
        }

        $(
            impl<'a> TryFrom<&'a Spec> for &'a $kind {
                type Error = ();
                fn try_from(s: &'a Spec) -> Result<Self, ()> {
                    match s { Spec::$kind(x) => Ok(x), #[allow(unreachable_patterns)] _ => Err(()) }
                }
            }
        )*
    };
}

kinds! {
    VirtualService => NETWORKING ["v1alpha3", "v1beta1", "v1"],
    DestinationRule => NETWORKING ["v1alpha3", "v1beta1", "v1"],
    Gateway => NETWORKING ["v1alpha3", "v1beta1", "v1"],
    ServiceEntry => NETWORKING ["v1alpha3", "v1beta1", "v1"],
    WorkloadEntry => NETWORKING ["v1alpha3", "v1beta1", "v1"],
    WorkloadGroup => NETWORKING ["v1alpha3", "v1beta1", "v1"],
    Sidecar => NETWORKING ["v1alpha3", "v1beta1", "v1"],
    EnvoyFilter => NETWORKING ["v1alpha3"],
    PeerAuthentication => SECURITY ["v1beta1", "v1"],
    RequestAuthentication => SECURITY ["v1beta1", "v1"],
    AuthorizationPolicy => SECURITY ["v1beta1", "v1"],
    Telemetry => TELEMETRY ["v1alpha1", "v1"],
}

impl Kind {
    /// Looks a kind up by its `kind:` name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// All kind names (for suggestions).
    pub fn names() -> Vec<&'static str> {
        Kind::ALL.iter().map(|k| k.as_str()).collect()
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kubernetes object metadata (the part config uses; the rest is accepted
/// so `kubectl get -o yaml` output loads).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    /// Name (DNS-1123 subdomain).
    pub name: String,
    /// Namespace; defaulted by the loader when empty.
    pub namespace: String,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set by Kubernetes; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Set by Kubernetes; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Set by Kubernetes; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Set by Kubernetes; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Set by Kubernetes; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Set by Kubernetes; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Set by Kubernetes; ignored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Set by Kubernetes; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_references: Option<serde_json::Value>,
    /// Set by Kubernetes; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_fields: Option<serde_json::Value>,
}

/// Where a resource was read from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Source {
    /// The file (empty for a resource no file holds).
    pub file: PathBuf,
    /// Line of the document's first line (0 for a resource no file holds).
    pub line: usize,
    /// The WorkloadGroup a WorkloadEntry was auto-registered from: set
    /// when the control plane made the entry for a connecting proxy
    /// rather than reading it from a file (`file` is empty then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_registered_from: Option<ResourceKey>,
}

/// Identifies a resource: kind, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceKey {
    /// Kind.
    pub kind: Kind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

impl ResourceKey {
    /// As a diagnostic reference.
    pub fn to_ref(&self) -> ResourceRef {
        ResourceRef {
            kind: self.kind.to_string(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// One loaded and validated resource.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Resource {
    /// The apiVersion it was written with.
    pub api_version: String,
    /// Metadata (namespace filled in).
    pub meta: ObjectMeta,
    /// The typed spec.
    pub spec: Spec,
    /// Where it came from.
    pub source: Source,
    /// The document tree, to locate fields (analysis reports lines).
    #[serde(skip)]
    pub node: Arc<Node>,
}

impl Resource {
    /// The kind.
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// kind/namespace/name.
    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            kind: self.kind(),
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
        }
    }

    /// Namespace.
    pub fn namespace(&self) -> &str {
        &self.meta.namespace
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// The spec as a concrete type, if it is one: `res.spec_as::<VirtualService>()`.
    pub fn spec_as<'a, T>(&'a self) -> Option<&'a T>
    where
        &'a T: TryFrom<&'a Spec>,
    {
        <&T>::try_from(&self.spec).ok()
    }

    /// The line of the field at `path` (or its nearest parent).
    pub fn line_of(&self, path: &crate::path::FieldPath) -> usize {
        self.node.locate(path).line
    }
}
