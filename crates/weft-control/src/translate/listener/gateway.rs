//! A gateway's listeners: one bound listener per HTTP server port (see
//! [`crate::translate::gateway`]), with an HTTP connection manager on
//! routes `http.<port>`. It binds the gateway workload's address and, when
//! its WorkloadEntry names a port like the server's port name, that port
//! (on one host, many gateways and sidecars can't all bind 8080); else
//! 0.0.0.0 and the server port, as Istio's gateways do.

use weft_xds::pb::envoy::config::core::v3::TrafficDirection;
use weft_xds::pb::envoy::config::listener::v3::Listener;

use super::{chain, http_connection_manager, listener, listener_name, rds};
use crate::translate::gateway::{http_ports, route_name};
use crate::translate::{Inputs, Proxy};

/// A gateway proxy's listeners.
pub fn listeners(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Listener> {
    http_ports(inputs, proxy)
        .into_iter()
        .map(|(port, served)| {
            let instance = proxy.instance.as_deref();
            let address = instance
                .map(|i| i.address.as_str())
                .filter(|a| !a.is_empty())
                .unwrap_or("0.0.0.0");
            let bind_port = instance
                .and_then(|i| i.named_ports.get(&served.name))
                .copied()
                .unwrap_or(port);
            let name = listener_name(address, bind_port);
            let hcm = http_connection_manager(
                format!("outbound_{address}_{bind_port}"),
                rds(&route_name(port)),
            );
            listener(
                name.clone(),
                address,
                bind_port,
                TrafficDirection::Outbound,
                true,
                vec![chain(name, None, hcm)],
            )
        })
        .collect()
}
