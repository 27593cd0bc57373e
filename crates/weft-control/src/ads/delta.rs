//! Incremental (delta) xDS: the proxy subscribes and unsubscribes names
//! (`*` is the wildcard; a first request naming nothing is the legacy
//! wildcard for LDS and CDS), and each response carries only the resources
//! that changed, each with its own version (a hash of its encoding), plus
//! the names that disappeared or left the subscription.
//!
//! A name subscribed to that doesn't exist is answered in
//! `removed_resources` (Envoy's "does not exist") and kept: the resource
//! is sent when it appears. `initial_resource_versions` (a reconnecting
//! proxy's holdings) are taken as held, so what the proxy has at the same
//! version is not sent again. A wildcard, legacy or `*`, lasts until the
//! proxy unsubscribes `*`: names subscribed beside it add nothing (the
//! protocol lets a server send more than was named, and a client that
//! added a name to a legacy wildcard must not lose the rest); a name
//! unsubscribed under a wildcard is still covered, so it is sent again.

use std::collections::BTreeSet;

use tonic::Status;
use weft_xds::TypeUrl;
use weft_xds::names::vhost_route;
use weft_xds::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};

use super::current::{Item, Selected};
use super::intern::Interner;
use super::stream::{Incoming, Interest, Prepared, Protocol, TypeState, Want};
use super::wire::{self, DeltaHead, DeltaResource};

/// Incremental xDS (`DeltaAggregatedResources`, `Delta*`).
pub(crate) struct Delta;

const WILDCARD: &str = "*";

/// A resource's version: FNV-1a over its encoding, never 0 (0 stands for
/// a version we can't read).
pub(crate) fn resource_version(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

/// How a version goes on the wire: 16 hex digits.
pub(crate) fn format_version(v: u64) -> String {
    format!("{v:016x}")
}

fn parse_version(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap_or(0)
}

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const DELTA: bool = true;

    fn incoming(r: DeltaDiscoveryRequest) -> Incoming {
        Incoming {
            node: r.node,
            type_url: r.type_url,
            nonce: r.response_nonce,
            error: r.error_detail,
            interest: Interest::Delta {
                subscribe: r.resource_names_subscribe,
                unsubscribe: r.resource_names_unsubscribe,
                initial: r.initial_resource_versions,
            },
        }
    }

    fn interest(
        state: &mut TypeState,
        type_url: TypeUrl,
        interest: Interest,
        interner: &Interner,
    ) -> Want {
        let Interest::Delta {
            subscribe,
            unsubscribe,
            initial,
        } = interest
        else {
            return Want::default();
        };
        // VHDS: a subscription `R` covers the resources `R/…`.
        let under = type_url == TypeUrl::VirtualHost;
        let first = !state.subscribed;
        state.subscribed = true;
        let mut want = Want {
            answer: first || !subscribe.is_empty(),
            names: BTreeSet::new(),
        };
        let was_wildcard = state.wildcard;
        if first {
            for (name, version) in &initial {
                state.held.insert(name.clone(), parse_version(version));
            }
            // The legacy wildcard: a first request naming nothing.
            if subscribe.is_empty() && !type_url.subscribed_by_name() {
                state.wildcard = true;
            }
        }
        if subscribe.iter().any(|n| n == WILDCARD) {
            state.wildcard = true;
        }
        let changes = !subscribe.is_empty() || !unsubscribe.is_empty();
        let mut names = if changes {
            Some((*state.names).clone())
        } else {
            None
        };
        let held_initially = |name: &str| {
            if under {
                initial.keys().any(|k| vhost_route(k) == name)
            } else {
                initial.contains_key(name)
            }
        };
        for name in subscribe.into_iter().filter(|n| n != WILDCARD) {
            if !held_initially(&name) {
                want.names.insert(name.clone());
            }
            if let Some(names) = &mut names {
                names.insert(name);
            }
        }
        for name in &unsubscribe {
            if name == WILDCARD {
                state.wildcard = false;
                continue;
            }
            if let Some(names) = &mut names {
                names.remove(name);
            }
            // Forgotten by the proxy; if the wildcard still covers it,
            // it is sent again now (as Envoy expects).
            if under {
                state.held.retain(|n| vhost_route(n) != name, true);
            } else {
                state.held.remove(name);
            }
            if state.wildcard {
                want.names.insert(name.clone());
            }
        }
        if let Some(names) = names
            && names != *state.names
        {
            // Streams of one shape subscribe to the same names: share them.
            state.names = interner.intern(names);
        }
        if !state.wildcard {
            // Held only through a wildcard the proxy dropped: it forgets
            // those itself.
            let names = &state.names;
            let covered = |n: &str| names.contains(if under { vhost_route(n) } else { n });
            state.held.retain(covered, was_wildcard);
        }
        want
    }

    fn prepare(
        state: &TypeState,
        type_url: TypeUrl,
        selected: Selected<'_>,
        want: &Want,
        version: u64,
    ) -> Result<Option<Prepared>, Status> {
        let under = type_url == TypeUrl::VirtualHost;
        let wanted = |name: &str| {
            !want.names.is_empty()
                && want
                    .names
                    .contains(if under { vhost_route(name) } else { name })
        };
        let items = &selected.items;
        let mut changed = Vec::new();
        let mut removed: BTreeSet<String> = BTreeSet::new();
        fn change<'a>(item: &Item<'a>) -> DeltaResource<'a> {
            DeltaResource {
                version: format_version(item.version),
                item: *item,
            }
        }
        match state.held.plain() {
            // The usual push: the proxy holds its last response.
            Some(held) if held.same(&selected.listing) && want.names.is_empty() => {}
            Some(held) if held.same_names(&selected.listing) => {
                // The same names (the cache keeps them): versions only.
                for (item, old) in items.iter().zip(held.versions()) {
                    if item.version != old || wanted(item.name) {
                        changed.push(change(item));
                    }
                }
            }
            _ => {
                // A merge walk of what it holds and what is in scope, both
                // in name order.
                let mut held = state.held.iter().peekable();
                for item in items {
                    while let Some((n, _)) = held.next_if(|(n, _)| *n < item.name) {
                        removed.insert(n.to_string());
                    }
                    let old = held.next_if(|(n, _)| *n == item.name).map(|(_, v)| v);
                    if old != Some(item.version) || wanted(item.name) {
                        changed.push(change(item));
                    }
                }
                removed.extend(held.map(|(n, _)| n.to_string()));
            }
        }
        // Names subscribed just now that don't exist: "does not exist".
        // For VHDS a route configuration's name `R` is a subscription,
        // not a resource: when none of its virtual hosts is in scope
        // (`R` has none, or doesn't exist) `R` itself is named, so the
        // client need not wait for virtual hosts that won't come; the
        // on-demand form `R/host` is answered so too (Weft doesn't
        // resolve hosts on demand).
        for name in &want.names {
            let exists = if under {
                !name.contains('/') && has_under(items, name)
            } else {
                items
                    .binary_search_by(|it| it.name.cmp(name.as_str()))
                    .is_ok()
            };
            if !exists {
                removed.insert(name.clone());
            }
        }
        if !want.answer && changed.is_empty() && removed.is_empty() {
            return Ok(None);
        }
        let removed: Vec<String> = removed.into_iter().collect();
        let head = DeltaHead {
            system_version_info: &version.to_string(),
            type_url: type_url.as_str(),
            removed_resources: &removed,
        };
        let body = wire::delta(&head, &changed);
        let sent = if type_url == TypeUrl::RouteConfiguration {
            changed.iter().map(|c| c.item.name.to_string()).collect()
        } else {
            Vec::new()
        };
        Ok(Some(Prepared {
            body,
            holds: selected.holds,
            listing: selected.listing,
            sent,
        }))
    }
}

/// Whether `items` (in name order) has a resource named `<route>/…`.
fn has_under(items: &[Item<'_>], route: &str) -> bool {
    let prefix = format!("{route}/");
    let at = items.partition_point(|it| it.name < prefix.as_str());
    items.get(at).is_some_and(|it| it.name.starts_with(&prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_short_stable_hashes() {
        let a = resource_version(b"cluster a");
        assert_eq!(a, resource_version(b"cluster a"));
        assert_ne!(a, resource_version(b"cluster b"));
        assert_eq!(format_version(a).len(), 16);
        assert_eq!(parse_version(&format_version(a)), a);
        assert_eq!(parse_version("not hex"), 0);
        assert_ne!(resource_version(b""), 0);
    }
}
