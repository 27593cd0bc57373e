//! Upstream TLS: the DestinationRule's `tls` as a cluster's transport
//! socket, and auto mTLS, as Istio sends them.
//!
//! - `ISTIO_MUTUAL`: the workload certificate and root from SDS (secrets
//!   `default` and `ROOTCA`, over the proxy's `sds-grpc` cluster, Istio's
//!   names), SNI the cluster name unless set, the server's identity checked
//!   against `subjectAltNames` or else the service accounts of the
//!   service's endpoints (`spiffe://<trust domain>/ns/<ns>/sa/<sa>`), and
//!   Istio's in-mesh ALPN.
//! - `SIMPLE` / `MUTUAL`: files named in the rule, served over SDS as
//!   `file-root:<ca>` and `file-cert:<cert>~<key>` (Istio's agent names);
//!   no CA or `insecureSkipVerify` skips verification. `credentialName`
//!   is honoured on gateways only (Istio ignores it on sidecars, whose
//!   rule would hand every sidecar a secret it may not read).
//! - No `tls` and the mesh's `enableAutoMtls` (default on), for a service
//!   inside the mesh: mTLS to endpoints labelled
//!   `security.istio.io/tlsMode: istio` (those with a sidecar), plaintext
//!   to the rest, by transport socket match.
//! - Proxyless gRPC clients can't use SDS or socket matches (gRPC rejects
//!   them): `ISTIO_MUTUAL` names their bootstrap's certificate provider
//!   instance `default` (certificates `default` and `ROOTCA`), as Istio's
//!   gRPC generator does; auto mTLS and file-based TLS are left out.

use weft_config::networking::{ClientTlsMode, ClientTlsSettings};
use weft_registry::{Endpoint, Location, Service};
use weft_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use weft_xds::pb::envoy::config::core::v3::{
    ApiConfigSource, ApiVersion, ConfigSource, DataSource, GrpcService, TransportSocket,
    api_config_source, config_source, data_source, grpc_service, transport_socket,
};
use weft_xds::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use weft_xds::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateProviderPluginInstance, CertificateValidationContext, CommonTlsContext,
    SdsSecretConfig, TlsParameters, UpstreamTlsContext, common_tls_context, tls_parameters,
};
use weft_xds::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use weft_xds::pb::google::protobuf::{Struct, Value, value};

use super::Inputs;
use super::proxy::ProxyKind;

pub use weft_xds::names::{RAW_BUFFER_SOCKET, TLS_SOCKET};
/// The SDS secret holding a workload's own certificate and key.
pub const SDS_DEFAULT: &str = "default";
/// The SDS secret holding the mesh's root certificate.
pub const SDS_ROOT: &str = "ROOTCA";
/// The bootstrap cluster SDS is fetched from (Istio's agent socket).
pub const SDS_CLUSTER: &str = "sds-grpc";
/// The endpoint label that says a workload has a sidecar accepting mTLS.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// The endpoint metadata key transport socket matches read.
pub const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";
/// ALPN for in-mesh HTTP/1 and TCP (`istio-peer-exchange` first, as Istio).
const ALPN_IN_MESH: [&str; 2] = ["istio-peer-exchange", "istio"];
/// ALPN for in-mesh HTTP/2.
const ALPN_IN_MESH_H2: [&str; 3] = ["istio-peer-exchange", "istio", "h2"];

/// What a cluster's TLS is decided from.
#[derive(Debug)]
pub struct Upstream<'a> {
    /// The service.
    pub service: &'a Service,
    /// Its endpoints (their service accounts are the identities expected).
    pub endpoints: &'a [Endpoint],
    /// The cluster speaks HTTP/2 upstream.
    pub http2: bool,
    /// Who the cluster is for.
    pub proxy_kind: ProxyKind,
}

/// Sets `c`'s transport socket (or socket matches) from `tls`.
pub fn apply(
    inputs: Inputs<'_>,
    c: &mut Cluster,
    tls: Option<&ClientTlsSettings>,
    up: &Upstream<'_>,
) {
    let original_dst = matches!(
        c.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(t)) if t == cluster::DiscoveryType::OriginalDst as i32
    );
    match tls {
        Some(t) if t.mode != ClientTlsMode::Disable => {
            if let Some(context) = context(inputs, &c.name, t, up) {
                c.transport_socket = Some(tls_socket(&context));
            }
        }
        Some(_) => {}
        None if up.proxy_kind == ProxyKind::Grpc => {}
        None => {
            let auto = inputs.config.mesh.enable_auto_mtls != Some(false);
            if auto && up.service.location == Location::MeshInternal && !original_dst {
                let mutual = ClientTlsSettings {
                    mode: ClientTlsMode::IstioMutual,
                    ..ClientTlsSettings::default()
                };
                if let Some(context) = context(inputs, &c.name, &mutual, up) {
                    c.transport_socket_matches = vec![
                        cluster::TransportSocketMatch {
                            name: "tlsMode-istio".into(),
                            r#match: Some(tls_mode_struct("istio")),
                            transport_socket: Some(tls_socket(&context)),
                        },
                        cluster::TransportSocketMatch {
                            name: "tlsMode-disabled".into(),
                            r#match: Some(Struct::default()),
                            transport_socket: Some(TransportSocket {
                                name: RAW_BUFFER_SOCKET.into(),
                                config_type: Some(transport_socket::ConfigType::TypedConfig(
                                    weft_xds::pack(&RawBuffer {}),
                                )),
                            }),
                        },
                    ];
                }
            }
        }
    }
}

/// `{tlsMode: <mode>}`, what endpoint metadata and socket matches carry.
pub fn tls_mode_struct(mode: &str) -> Struct {
    Struct {
        fields: [(
            "tlsMode".to_string(),
            Value {
                kind: Some(value::Kind::StringValue(mode.to_string())),
            },
        )]
        .into_iter()
        .collect(),
    }
}

/// Whether an endpoint accepts Istio mTLS (it has a sidecar).
pub fn accepts_mtls(e: &Endpoint) -> bool {
    e.labels.get(TLS_MODE_LABEL).map(String::as_str) == Some("istio")
}

fn tls_socket(context: &UpstreamTlsContext) -> TransportSocket {
    TransportSocket {
        name: TLS_SOCKET.into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(weft_xds::pack(
            context,
        ))),
    }
}

fn context(
    inputs: Inputs<'_>,
    cluster_name: &str,
    tls: &ClientTlsSettings,
    up: &Upstream<'_>,
) -> Option<UpstreamTlsContext> {
    let mut common = CommonTlsContext {
        tls_params: Some(TlsParameters {
            tls_minimum_protocol_version: tls_parameters::TlsProtocol::TlSv12 as i32,
            tls_maximum_protocol_version: tls_parameters::TlsProtocol::TlSv13 as i32,
            ..TlsParameters::default()
        }),
        ..CommonTlsContext::default()
    };
    let mut sni = tls.sni.clone();
    match tls.mode {
        ClientTlsMode::Disable => return None,
        ClientTlsMode::IstioMutual => {
            let sans = if tls.subject_alt_names.is_empty() {
                identities(inputs, up)
            } else {
                tls.subject_alt_names.clone()
            };
            if up.proxy_kind == ProxyKind::Grpc {
                return Some(grpc_mutual(&sans, &tls.sni, cluster_name));
            }
            common.tls_certificate_sds_secret_configs = vec![sds(SDS_DEFAULT)];
            common.validation_context_type = Some(combined(&sans, sds(SDS_ROOT), ""));
            if sni.is_empty() {
                sni = cluster_name.to_string();
            }
            let alpn: &[&str] = if up.http2 {
                &ALPN_IN_MESH_H2
            } else {
                &ALPN_IN_MESH
            };
            common.alpn_protocols = alpn.iter().map(|s| s.to_string()).collect();
        }
        ClientTlsMode::Simple | ClientTlsMode::Mutual if up.proxy_kind == ProxyKind::Grpc => {
            return None;
        }
        ClientTlsMode::Simple | ClientTlsMode::Mutual => {
            let mutual = tls.mode == ClientTlsMode::Mutual;
            let sans = if tls.subject_alt_names.is_empty()
                && up.service.location == Location::MeshExternal
            {
                up.service.subject_alt_names.clone()
            } else {
                tls.subject_alt_names.clone()
            };
            if !tls.credential_name.is_empty() {
                if up.proxy_kind != ProxyKind::Gateway {
                    return None;
                }
                let name = format!("kubernetes://{}", tls.credential_name);
                if mutual {
                    common.tls_certificate_sds_secret_configs = vec![sds(&name)];
                }
                common.validation_context_type =
                    Some(combined(&sans, sds(&format!("{name}-cacert")), ""));
            } else {
                if mutual {
                    if tls.client_certificate.is_empty() || tls.private_key.is_empty() {
                        return None;
                    }
                    common.tls_certificate_sds_secret_configs = vec![sds(&format!(
                        "file-cert:{}~{}",
                        tls.client_certificate, tls.private_key
                    ))];
                }
                let ca = if tls.ca_certificates.is_empty() {
                    "system"
                } else {
                    tls.ca_certificates.as_str()
                };
                common.validation_context_type = Some(if tls.insecure_skip_verify == Some(true) {
                    common_tls_context::ValidationContextType::ValidationContext(
                        CertificateValidationContext::default(),
                    )
                } else {
                    combined(&sans, sds(&format!("file-root:{ca}")), &tls.ca_crl)
                });
            }
            if up.http2 {
                common.alpn_protocols = vec!["h2".into()];
            }
        }
    }
    Some(UpstreamTlsContext {
        common_tls_context: Some(common),
        sni,
        ..UpstreamTlsContext::default()
    })
}

/// `ISTIO_MUTUAL` for a proxyless gRPC client: certificates from its
/// bootstrap's `default` certificate provider instance.
fn grpc_mutual(sans: &[String], sni: &str, cluster_name: &str) -> UpstreamTlsContext {
    let instance = |certificate: &str| CertificateProviderPluginInstance {
        instance_name: "default".into(),
        certificate_name: certificate.into(),
    };
    let validation = CertificateValidationContext {
        ca_certificate_provider_instance: Some(instance(SDS_ROOT)),
        ..verification(sans, "")
    };
    UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_provider_instance: Some(instance(SDS_DEFAULT)),
            validation_context_type: Some(
                common_tls_context::ValidationContextType::ValidationContext(validation),
            ),
            ..CommonTlsContext::default()
        }),
        sni: if sni.is_empty() {
            cluster_name.to_string()
        } else {
            sni.to_string()
        },
        ..UpstreamTlsContext::default()
    }
}

/// The SPIFFE identities of the service's endpoints, sorted.
fn identities(inputs: Inputs<'_>, up: &Upstream<'_>) -> Vec<String> {
    let trust_domain = match inputs.config.mesh.trust_domain.as_str() {
        "" => "cluster.local",
        td => td,
    };
    let mut ids: Vec<String> = up
        .endpoints
        .iter()
        .filter(|e| !e.service_account.is_empty())
        .map(|e| {
            format!(
                "spiffe://{trust_domain}/ns/{}/sa/{}",
                e.namespace, e.service_account
            )
        })
        .chain(up.service.subject_alt_names.iter().cloned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The server certificate's expected identities (exact SANs) and CRL file.
fn verification(sans: &[String], crl: &str) -> CertificateValidationContext {
    CertificateValidationContext {
        #[allow(deprecated)]
        match_subject_alt_names: sans
            .iter()
            .map(|s| StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(s.clone())),
                ..StringMatcher::default()
            })
            .collect(),
        crl: (!crl.is_empty()).then(|| DataSource {
            specifier: Some(data_source::Specifier::Filename(crl.to_string())),
            ..DataSource::default()
        }),
        ..CertificateValidationContext::default()
    }
}

/// [`verification`] with the root from SDS.
fn combined(
    sans: &[String],
    root: SdsSecretConfig,
    crl: &str,
) -> common_tls_context::ValidationContextType {
    common_tls_context::ValidationContextType::CombinedValidationContext(
        common_tls_context::CombinedCertificateValidationContext {
            default_validation_context: Some(verification(sans, crl)),
            validation_context_sds_secret_config: Some(root),
            ..Default::default()
        },
    )
}

/// A secret fetched over SDS from the proxy's agent (`sds-grpc`), as
/// Istio's `ConstructSdsSecretConfig`.
fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ConfigSource {
            resource_api_version: ApiVersion::V3 as i32,
            config_source_specifier: Some(config_source::ConfigSourceSpecifier::ApiConfigSource(
                ApiConfigSource {
                    api_type: api_config_source::ApiType::Grpc as i32,
                    transport_api_version: ApiVersion::V3 as i32,
                    set_node_on_first_message_only: true,
                    grpc_services: vec![GrpcService {
                        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                            grpc_service::EnvoyGrpc {
                                cluster_name: SDS_CLUSTER.into(),
                                ..Default::default()
                            },
                        )),
                        ..GrpcService::default()
                    }],
                    ..ApiConfigSource::default()
                },
            )),
            ..ConfigSource::default()
        }),
    }
}

#[cfg(test)]
mod tests;
