//! State-of-the-world xDS: every request names the whole subscription
//! (an empty list is the wildcard for LDS and CDS, as is `*`), and every
//! response carries every resource of the type in scope.

use std::collections::BTreeSet;

use tonic::Status;
use weft_xds::TypeUrl;
use weft_xds::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::current::Selected;
use super::intern::Interner;
use super::stream::{Incoming, Interest, Prepared, Protocol, TypeState, Want};
use super::wire::{self, SotwHead};

/// State of the world (`StreamAggregatedResources`, `Stream*`).
pub(crate) struct Sotw;

/// The subscription a state-of-the-world name list means: explicit names,
/// and whether it is a wildcard.
pub(crate) fn subscription(type_url: TypeUrl, names: Vec<String>) -> (BTreeSet<String>, bool) {
    let empty = names.is_empty();
    let mut star = false;
    let names: BTreeSet<String> = names
        .into_iter()
        .filter(|n| {
            star |= n == "*";
            n != "*"
        })
        .collect();
    (names, star || (empty && !type_url.subscribed_by_name()))
}

impl Protocol for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const DELTA: bool = false;

    fn incoming(r: DiscoveryRequest) -> Incoming {
        Incoming {
            node: r.node,
            type_url: r.type_url,
            nonce: r.response_nonce,
            error: r.error_detail,
            interest: Interest::Names(r.resource_names),
        }
    }

    fn interest(
        state: &mut TypeState,
        type_url: TypeUrl,
        interest: Interest,
        interner: &Interner,
    ) -> Want {
        let Interest::Names(names) = interest else {
            return Want::default();
        };
        let first = !state.subscribed;
        // The usual request, an ACK naming what it named before (in
        // order): nothing to build or compare as a set.
        if !first
            && !state.wildcard
            && !names.is_empty()
            && names.len() == state.names.len()
            && names.iter().eq(state.names.iter())
        {
            return Want::default();
        }
        let (names, wildcard) = subscription(type_url, names);
        let changed = names != *state.names || wildcard != state.wildcard;
        state.subscribed = true;
        if changed || first {
            state.names = interner.intern(names);
        }
        state.wildcard = wildcard;
        Want {
            answer: first || changed,
            ..Want::default()
        }
    }

    fn prepare(
        state: &TypeState,
        type_url: TypeUrl,
        selected: Selected<'_>,
        want: &Want,
        version: u64,
    ) -> Result<Option<Prepared>, Status> {
        let holds = selected.holds;
        if !want.answer && state.sent.as_ref().is_some_and(|s| s.same(&holds)) {
            return Ok(None);
        }
        let head = SotwHead {
            version_info: &version.to_string(),
            type_url: type_url.as_str(),
        };
        Ok(Some(Prepared {
            body: wire::sotw(&head, &holds),
            holds,
            listing: selected.listing,
            sent: Vec::new(),
        }))
    }
}
