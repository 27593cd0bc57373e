//! Types shared by several networking kinds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator, check_selector_labels};

/// `WorkloadSelector`: selects workloads by labels (`labels:`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkloadSelector {
    /// Labels a workload must carry, all of them.
    pub labels: BTreeMap<String, String>,
}

impl Validate for WorkloadSelector {
    fn validate(&self, v: &mut Validator) {
        v.field("labels", |v| check_selector_labels(v, &self.labels));
    }
}

/// A port selector (`number:`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortSelector {
    /// Port number.
    pub number: u32,
}

/// A port as Gateway servers (`Port`), ServiceEntries (`ServicePort`) and
/// Sidecar listeners (`SidecarPort`) declare it; each kind validates the
/// fields it allows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Port {
    /// Port number (1-65535; 0 only for a `unix://` bind).
    pub number: u32,
    /// Protocol: HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, MONGO,
    /// MYSQL, REDIS, UDP, any case; empty means detected from the traffic
    /// (not allowed on Gateway servers).
    pub protocol: String,
    /// Port name (a DNS label, unique within the resource).
    pub name: String,
    /// Port on the endpoints when it differs from `number` (ServiceEntry
    /// only; 0 means the same).
    pub target_port: u32,
}

impl Port {
    /// The parsed protocol ([`super::Protocol::Unsupported`] if unknown or empty).
    pub fn protocol(&self) -> super::Protocol {
        super::Protocol::parse(&self.protocol)
    }
}

/// `ServerTLSSettings`: TLS a Gateway server (or Sidecar ingress listener)
/// terminates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerTlsSettings {
    /// Redirect plain HTTP requests to HTTPS (301).
    pub https_redirect: bool,
    /// How TLS is handled.
    pub mode: ServerTlsMode,
    /// Path of the server certificate file.
    pub server_certificate: String,
    /// Path of the private key file.
    pub private_key: String,
    /// Path of the CA certificates to verify clients with.
    pub ca_certificates: String,
    /// Path of a certificate revocation list.
    pub ca_crl: String,
    /// Name of the secret holding certificate, key and CA.
    pub credential_name: String,
    /// Several secrets (e.g. RSA and ECDSA), instead of `credentialName`.
    pub credential_names: Vec<String>,
    /// Inline certificate/key file pairs (RSA and ECDSA).
    pub tls_certificates: Vec<TlsCertificate>,
    /// Client certificate SANs to accept.
    pub subject_alt_names: Vec<String>,
    /// Accepted client certificate SPKI hashes (base64 SHA-256).
    pub verify_certificate_spki: Vec<String>,
    /// Accepted client certificate hashes (hex SHA-256).
    pub verify_certificate_hash: Vec<String>,
    /// Minimum TLS version.
    pub min_protocol_version: TlsProtocol,
    /// Maximum TLS version.
    pub max_protocol_version: TlsProtocol,
    /// Allowed cipher suites (OpenSSL names).
    pub cipher_suites: Vec<String>,
}

/// A certificate/key pair by file path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TlsCertificate {
    /// Server certificate path.
    pub server_certificate: String,
    /// Private key path.
    pub private_key: String,
    /// CA certificates path.
    pub ca_certificates: String,
}

/// `ServerTLSSettings.TLSmode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    /// Forward the TLS connection untouched, routed by SNI.
    #[default]
    Passthrough,
    /// Terminate TLS with a server certificate.
    Simple,
    /// Terminate TLS and require a client certificate.
    Mutual,
    /// Passthrough routed by SNI to the service named in it (multi-cluster).
    AutoPassthrough,
    /// Mesh mTLS with workload certificates.
    IstioMutual,
    /// Client certificate optional, verified if present.
    OptionalMutual,
}

/// `ServerTLSSettings.TLSProtocol`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum TlsProtocol {
    /// The proxy's default.
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    TlsV1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    TlsV1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}

impl Validate for ServerTlsSettings {
    fn validate(&self, v: &mut Validator) {
        let has_files = !self.server_certificate.is_empty() || !self.private_key.is_empty();
        let has_credential = !self.credential_name.is_empty() || !self.credential_names.is_empty();
        if !self.credential_name.is_empty() && !self.credential_names.is_empty() {
            v.conflict("only one of credentialName or credentialNames can be set");
        }
        if self.credential_names.len() > 2 {
            v.field("credentialNames", |v| {
                v.error("at most 2 credentialNames (one RSA and one ECDSA) can be set");
            });
        }
        if self.tls_certificates.len() > 2 {
            v.field("tlsCertificates", |v| {
                v.error("at most 2 tlsCertificates (one RSA and one ECDSA) can be set");
            });
        }
        if has_credential && (has_files || !self.tls_certificates.is_empty()) {
            v.conflict("credentialName(s) cannot be combined with certificate file paths");
        }
        match self.mode {
            ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
                if !has_credential =>
            {
                if self.tls_certificates.is_empty() {
                    if self.server_certificate.is_empty() {
                        v.required("serverCertificate")
                            .hint("SIMPLE and MUTUAL TLS need credentialName or serverCertificate and privateKey");
                    }
                    if self.private_key.is_empty() {
                        v.required("privateKey");
                    }
                }
                if self.mode != ServerTlsMode::Simple && self.ca_certificates.is_empty() {
                    v.required("caCertificates")
                        .hint("MUTUAL TLS verifies clients against caCertificates");
                }
            }
            _ => {}
        }
        if self.min_protocol_version != TlsProtocol::TlsAuto
            && self.max_protocol_version != TlsProtocol::TlsAuto
            && self.min_protocol_version > self.max_protocol_version
        {
            v.field("minProtocolVersion", |v| {
                v.error("minProtocolVersion is higher than maxProtocolVersion");
            });
        }
    }
}
