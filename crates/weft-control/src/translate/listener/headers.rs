//! The HTTP connection manager's header settings (`x-forwarded-for`,
//! `x-envoy-internal`, `x-request-id`, client certificate details), per
//! listener class exactly as Istio sets them, so an Envoy fed by Weft
//! behaves as one fed by Istio and Weft's proxy reads the same fields:
//!
//! | field | sidecar outbound | sidecar inbound | gateway |
//! | --- | --- | --- | --- |
//! | `use_remote_address` | false | false | true |
//! | `xff_num_trusted_hops` | 0 | 0 | `gatewayTopology.numTrustedProxies` |
//! | `skip_xff_append` | false | false | false |
//! | `forward_client_cert_details` | unset (SANITIZE) | APPEND_FORWARD | SANITIZE_SET, or `gatewayTopology.forwardClientCertDetails` |
//! | `set_current_client_cert_details` | — | subject, URI, DNS | subject, cert, URI, DNS |
//! | `request_id_extension` | UUID, `use_request_id_for_trace_sampling` | same | same |
//! | `generate_request_id`, `preserve_external_request_id`, `internal_address_config` | unset (Envoy's defaults: generate; replace an edge request's ID; RFC 1918 + loopback internal) | same | same |
//!
//! Sources: Istio's `buildHTTPConnectionManager` (listener_builder.go:
//! `UseRemoteAddress` from `httpOpts.useRemoteAddress`, the UUID request
//! ID extension; `InternalAddressConfig` only from mesh networks behind a
//! feature flag), `buildSidecarOutboundHTTPListenerOpts`
//! (`useRemoteAddress: features.UseRemoteAddress`, false by default),
//! `buildSidecarInboundHTTPOpts` (`useRemoteAddress: false`,
//! `APPEND_FORWARD`) and `buildGatewayConnectionManager` (gateway.go:
//! `useRemoteAddress: true`, `XffNumTrustedHops` and XFCC from the
//! proxy config's `gatewayTopology`).

use serde_json::Value;
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, RequestIdExtension, http_connection_manager,
};
use weft_xds::pb::envoy::extensions::request_id::uuid::v3::UuidRequestIdConfig;
use weft_xds::pb::google::protobuf::BoolValue;

use super::super::Inputs;

/// Which of Istio's listener classes an HTTP connection manager is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A sidecar's outbound listener (the app's requests to services).
    SidecarOutbound,
    /// A sidecar's inbound listener (peers' requests to the app).
    SidecarInbound,
    /// A gateway's listener (the edge).
    Gateway,
}

/// Sets the header fields of `hcm` for `class` (see the module table).
pub fn apply(inputs: Inputs<'_>, class: Class, hcm: &mut HttpConnectionManager) {
    use http_connection_manager::{ForwardClientCertDetails, SetCurrentClientCertDetails};
    hcm.use_remote_address = Some(BoolValue {
        value: class == Class::Gateway,
    });
    hcm.request_id_extension = Some(RequestIdExtension {
        typed_config: Some(weft_xds::pack(&UuidRequestIdConfig {
            pack_trace_reason: None,
            use_request_id_for_trace_sampling: Some(BoolValue { value: true }),
        })),
    });
    match class {
        Class::SidecarOutbound => {}
        Class::SidecarInbound => {
            hcm.forward_client_cert_details = ForwardClientCertDetails::AppendForward as i32;
            hcm.set_current_client_cert_details = Some(SetCurrentClientCertDetails {
                subject: Some(BoolValue { value: true }),
                uri: true,
                dns: true,
                ..SetCurrentClientCertDetails::default()
            });
        }
        Class::Gateway => {
            let topology = gateway_topology(inputs);
            hcm.xff_num_trusted_hops = topology.num_trusted_proxies;
            hcm.forward_client_cert_details = topology
                .forward_client_cert_details
                .unwrap_or(ForwardClientCertDetails::SanitizeSet)
                as i32;
            hcm.set_current_client_cert_details = Some(SetCurrentClientCertDetails {
                subject: Some(BoolValue { value: true }),
                cert: true,
                uri: true,
                dns: true,
                ..SetCurrentClientCertDetails::default()
            });
        }
    }
}

/// What a gateway reads of the mesh's `defaultConfig.gatewayTopology`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Topology {
    num_trusted_proxies: u32,
    forward_client_cert_details: Option<http_connection_manager::ForwardClientCertDetails>,
}

fn gateway_topology(inputs: Inputs<'_>) -> Topology {
    inputs
        .config
        .mesh
        .default_config
        .as_ref()
        .and_then(|c| c.gateway_topology.as_ref())
        .map(topology)
        .unwrap_or_default()
}

/// `gatewayTopology` (`numTrustedProxies`, `forwardClientCertDetails` as
/// MeshConfig spells them); anything unreadable is left at its default.
fn topology(v: &Value) -> Topology {
    use http_connection_manager::ForwardClientCertDetails as Fcc;
    let num_trusted_proxies = v
        .get("numTrustedProxies")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    let forward_client_cert_details =
        match v.get("forwardClientCertDetails").and_then(Value::as_str) {
            Some("SANITIZE") => Some(Fcc::Sanitize),
            Some("FORWARD_ONLY") => Some(Fcc::ForwardOnly),
            Some("APPEND_FORWARD") => Some(Fcc::AppendForward),
            Some("SANITIZE_SET") => Some(Fcc::SanitizeSet),
            Some("ALWAYS_FORWARD_ONLY") => Some(Fcc::AlwaysForwardOnly),
            _ => None,
        };
    Topology {
        num_trusted_proxies,
        forward_client_cert_details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::test_inputs::TestMesh;
    use http_connection_manager::ForwardClientCertDetails as Fcc;

    fn hcm(mesh: &TestMesh, class: Class) -> HttpConnectionManager {
        let mut h = HttpConnectionManager::default();
        apply(mesh.inputs(), class, &mut h);
        h
    }

    #[test]
    fn each_class_gets_istios_header_settings() {
        let mesh = TestMesh::new("");
        let out = hcm(&mesh, Class::SidecarOutbound);
        assert_eq!(out.use_remote_address, Some(BoolValue { value: false }));
        assert_eq!(out.xff_num_trusted_hops, 0);
        assert!(!out.skip_xff_append);
        assert_eq!(out.forward_client_cert_details, Fcc::Sanitize as i32);
        assert!(out.set_current_client_cert_details.is_none());
        let id = out.request_id_extension.expect("request id extension");
        let uuid: UuidRequestIdConfig =
            weft_xds::unpack(id.typed_config.as_ref().expect("typed")).expect("uuid");
        assert_eq!(
            uuid.use_request_id_for_trace_sampling,
            Some(BoolValue { value: true })
        );
        assert!(out.generate_request_id.is_none() && !out.preserve_external_request_id);
        let inbound = hcm(&mesh, Class::SidecarInbound);
        assert_eq!(inbound.use_remote_address, Some(BoolValue { value: false }));
        assert_eq!(
            inbound.forward_client_cert_details,
            Fcc::AppendForward as i32
        );
        let set = inbound.set_current_client_cert_details.expect("set");
        assert!(set.uri && set.dns && !set.cert);
        let gw = hcm(&mesh, Class::Gateway);
        assert_eq!(gw.use_remote_address, Some(BoolValue { value: true }));
        assert_eq!(gw.xff_num_trusted_hops, 0);
        assert_eq!(gw.forward_client_cert_details, Fcc::SanitizeSet as i32);
        assert!(gw.set_current_client_cert_details.expect("set").cert);
    }

    #[test]
    fn a_gateway_reads_the_mesh_gateway_topology() {
        let mut mesh = TestMesh::new("");
        let (config, diagnostics) = weft_config::mesh::parse_mesh(
            "defaultConfig:\n  gatewayTopology: {numTrustedProxies: 2, forwardClientCertDetails: ALWAYS_FORWARD_ONLY}\n",
        )
        .expect("mesh config");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        mesh.config.mesh = std::sync::Arc::new(config);
        let gw = hcm(&mesh, Class::Gateway);
        assert_eq!(gw.xff_num_trusted_hops, 2);
        assert_eq!(
            gw.forward_client_cert_details,
            Fcc::AlwaysForwardOnly as i32
        );
        // Sidecars don't read it.
        assert_eq!(hcm(&mesh, Class::SidecarInbound).xff_num_trusted_hops, 0);
        assert_eq!(
            topology(&serde_json::json!({"numTrustedProxies": "x"})),
            Topology::default()
        );
    }
}
