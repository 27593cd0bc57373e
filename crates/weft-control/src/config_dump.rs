//! `/debug/config_dump?proxy=ID` (Istio's `/debug/config_dump?proxyID=`):
//! what one connected proxy was last sent, in the shape of Envoy's own
//! admin `/config_dump` (`envoy.admin.v3.ConfigDump`), so tools that read
//! an Envoy's dump (`istioctl proxy-config --file`, `weft proxy-config`)
//! read this one too: a `ClustersConfigDump`, `ListenersConfigDump`,
//! `RoutesConfigDump` and `EndpointsConfigDump`, each resource as the
//! proxy received it, rendered as proto3 JSON by [`weft_xds::json`].
//!
//! `ID` is the proxy's xDS node id, or what identifies one unambiguously:
//! its `pod.namespace` (the third part of `type~ip~pod.namespace~domain`)
//! or a substring of its id (see [`find_proxy`]).

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use weft_xds::json::{JsonError, message_to_json};
use weft_xds::pb::envoy::admin::v3::{
    ClustersConfigDump, ConfigDump, EndpointsConfigDump, ListenersConfigDump, RoutesConfigDump,
    clusters_config_dump, endpoints_config_dump, listeners_config_dump, routes_config_dump,
};
use weft_xds::pb::envoy::config::listener::v3::Listener;
use weft_xds::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use weft_xds::pb::google::protobuf::Any;
use weft_xds::{TypeUrl, pack, unpack};

use crate::ads::Sent;
use crate::debug::DebugState;

/// Why a query names no single connected proxy.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyLookupError {
    /// Nothing matches.
    #[error("no connected proxy matches {query:?}")]
    Unknown {
        /// What was asked for.
        query: String,
        /// Every connected proxy's id.
        connected: Vec<String>,
    },
    /// Several proxies match.
    #[error("{query:?} matches {} connected proxies; give one of their ids", matches.len())]
    Ambiguous {
        /// What was asked for.
        query: String,
        /// The ids that match.
        matches: Vec<String>,
    },
}

/// The one id among `ids` that `query` names: the id itself; else the
/// proxy whose `pod.namespace` part is `query` (as `istioctl` takes
/// `name.namespace`); else the only id containing `query`.
pub fn find_proxy(ids: &[String], query: &str) -> Result<String, ProxyLookupError> {
    if ids.iter().any(|id| id == query) {
        return Ok(query.to_string());
    }
    let pod_namespace = |id: &str| id.split('~').nth(2).map(str::to_string);
    let by_name: Vec<&String> = ids
        .iter()
        .filter(|id| pod_namespace(id).as_deref() == Some(query))
        .collect();
    let candidates = if by_name.is_empty() {
        ids.iter().filter(|id| id.contains(query)).collect()
    } else {
        by_name
    };
    match candidates.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ProxyLookupError::Unknown {
            query: query.to_string(),
            connected: ids.to_vec(),
        }),
        many => Err(ProxyLookupError::Ambiguous {
            query: query.to_string(),
            matches: many.iter().map(|s| (*s).clone()).collect(),
        }),
    }
}

/// The `envoy.admin.v3.ConfigDump` of what a proxy was sent (per type,
/// from `Stats::sent`): clusters, listeners, routes, endpoints, in that
/// order, each section present (empty if nothing of the type was sent).
pub fn config_dump(sent: &BTreeMap<TypeUrl, Sent>) -> ConfigDump {
    let of = |t: TypeUrl| sent.get(&t);
    let version = |t: TypeUrl| of(t).map(|s| s.version.clone()).unwrap_or_default();
    let each = |t: TypeUrl| -> Vec<(String, Any)> {
        let Some(s) = of(t) else {
            return Vec::new();
        };
        // Decoded on demand: streams keep only the encoding.
        match s.resources.to_vec() {
            Ok(all) => all.into_iter().map(|r| (s.version.clone(), r)).collect(),
            Err(e) => {
                tracing::error!(target: "weft::xds", r#type = t.short_name(), "cannot decode what was sent: {e}");
                Vec::new()
            }
        }
    };
    let clusters = ClustersConfigDump {
        version_info: version(TypeUrl::Cluster),
        dynamic_active_clusters: each(TypeUrl::Cluster)
            .into_iter()
            .map(
                |(version_info, cluster)| clusters_config_dump::DynamicCluster {
                    version_info,
                    cluster: Some(cluster),
                    ..Default::default()
                },
            )
            .collect(),
        ..ClustersConfigDump::default()
    };
    let listeners = ListenersConfigDump {
        version_info: version(TypeUrl::Listener),
        dynamic_listeners: each(TypeUrl::Listener)
            .into_iter()
            .map(
                |(version_info, listener)| listeners_config_dump::DynamicListener {
                    name: unpack::<Listener>(&listener)
                        .map(|l| l.name)
                        .unwrap_or_default(),
                    active_state: Some(listeners_config_dump::DynamicListenerState {
                        version_info,
                        listener: Some(listener),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .collect(),
        ..ListenersConfigDump::default()
    };
    let routes = RoutesConfigDump {
        dynamic_route_configs: with_vhosts(
            each(TypeUrl::RouteConfiguration),
            of(TypeUrl::VirtualHost),
        )
        .into_iter()
        .map(
            |(version_info, route_config)| routes_config_dump::DynamicRouteConfig {
                version_info,
                route_config: Some(route_config),
                ..Default::default()
            },
        )
        .collect(),
        ..RoutesConfigDump::default()
    };
    let endpoints = EndpointsConfigDump {
        dynamic_endpoint_configs: each(TypeUrl::ClusterLoadAssignment)
            .into_iter()
            .map(
                |(version_info, endpoint_config)| endpoints_config_dump::DynamicEndpointConfig {
                    version_info,
                    endpoint_config: Some(endpoint_config),
                    ..Default::default()
                },
            )
            .collect(),
        ..EndpointsConfigDump::default()
    };
    ConfigDump {
        configs: vec![
            pack(&clusters),
            pack(&listeners),
            pack(&routes),
            pack(&endpoints),
        ],
    }
}

/// VHDS: the route configurations with the virtual hosts sent for them
/// put back, as the proxy assembles them (what a person wants to see).
fn with_vhosts(routes: Vec<(String, Any)>, vhosts: Option<&Sent>) -> Vec<(String, Any)> {
    let Some(vhosts) = vhosts else {
        return routes;
    };
    let (Some(names), Ok(all)) = (vhosts.names(), vhosts.resources.to_vec()) else {
        return routes;
    };
    let vhosts: Vec<(String, VirtualHost)> = names
        .into_iter()
        .zip(all)
        .filter_map(|(n, any)| unpack::<VirtualHost>(&any).ok().map(|vh| (n, vh)))
        .collect();
    let (versions, heads): (Vec<String>, Vec<RouteConfiguration>) = routes
        .iter()
        .filter_map(|(v, any)| {
            unpack::<RouteConfiguration>(any)
                .ok()
                .map(|r| (v.clone(), r))
        })
        .unzip();
    if heads.len() != routes.len() {
        return routes; // not ours to reassemble
    }
    versions
        .into_iter()
        .zip(crate::vhds::reassemble(heads, vhosts))
        .map(|(v, r)| (v, pack(&r)))
        .collect()
}

/// The dump as proto3 JSON (`{"configs": [{"@type": ...}, ...]}`).
pub fn config_dump_json(sent: &BTreeMap<TypeUrl, Sent>) -> Result<Value, JsonError> {
    message_to_json(&config_dump(sent))
}

fn error(status: StatusCode, message: String, proxies: &[String]) -> Response {
    (status, Json(json!({"error": message, "proxies": proxies}))).into_response()
}

/// `GET /debug/config_dump?proxy=ID` (or `proxyID=ID`).
pub(crate) async fn handler(
    State(state): State<DebugState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut ids: Vec<String> = state
        .stats
        .proxy_statuses()
        .into_iter()
        .map(|p| p.id)
        .collect();
    ids.dedup();
    let Some(wanted) = query.get("proxy").or_else(|| query.get("proxyID")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "which proxy? ask for /debug/config_dump?proxy=ID with one of the connected proxies' ids (or a unique part of one, e.g. its pod.namespace)".into(),
            &ids,
        );
    };
    let id = match find_proxy(&ids, wanted) {
        Ok(id) => id,
        Err(e @ ProxyLookupError::Unknown { .. }) => {
            return error(StatusCode::NOT_FOUND, e.to_string(), &ids);
        }
        Err(ref e @ ProxyLookupError::Ambiguous { ref matches, .. }) => {
            return error(StatusCode::BAD_REQUEST, e.to_string(), matches);
        }
    };
    let Some(sent) = state.stats.sent(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("proxy {id:?} disconnected"),
            &ids,
        );
    };
    // Decoding and rendering every resource is CPU work (milliseconds for
    // a small mesh, more for a large one): off the runtime that serves xDS.
    let rendered = tokio::task::spawn_blocking(move || {
        config_dump_json(&sent).and_then(|v| {
            serde_json::to_string_pretty(&v).map_err(|source| JsonError::Json {
                type_name: "envoy.admin.v3.ConfigDump".into(),
                source,
            })
        })
    })
    .await;
    let rendered = match rendered {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rendering the config dump of {id:?} failed: {e}"),
                &[],
            );
        }
    };
    match rendered {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text + "\n").into_response(),
        Err(e) => {
            tracing::error!(target: "weft::debug", proxy = %id, error = %e, "config dump failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot render the config dump of {id:?}: {e}"),
                &[],
            )
        }
    }
}

#[cfg(test)]
mod tests;
