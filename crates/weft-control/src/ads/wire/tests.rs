//! The frames written from shared encodings are byte for byte what prost
//! writes for the same messages.

use std::collections::BTreeSet;
use std::sync::Arc;

use prost::Message;
use weft_xds::TypeUrl;
use weft_xds::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryResponse, DiscoveryResponse, Resource,
};
use weft_xds::pb::google::protobuf::Any;

use super::*;
use crate::ads::current::Current;
use crate::ads::grpc::frame;
use crate::ads::{Generation, Held, Segment};
use crate::cache::Translation;
use crate::translate::test_inputs::TestMesh;
use crate::translate::{Proxy, resolve};

/// The bookinfo examples as productpage's sidecar gets them: both
/// segments (shared and own) in every type.
fn current(vhds: bool) -> Current {
    let mesh = TestMesh::examples();
    let proxy = Proxy {
        pod: "productpage-v1".into(),
        ..Proxy::sidecar(
            "sidecar~127.0.0.1~productpage-v1.bookinfo~bookinfo.svc.cluster.local",
            "bookinfo",
            &[],
        )
    };
    let generation = Generation::new(1, Arc::new(mesh.config), Arc::new(mesh.registry));
    let resolved = resolve(generation.inputs(), &proxy);
    Current::new(&Translation::new(&generation, &resolved), None, vhds)
}

/// What prost writes for `message`, as one gRPC frame.
fn prost_frame(message: &impl Message) -> Bytes {
    frame(message).expect("frame").to_bytes()
}

fn any(len: usize, fill: u8) -> Any {
    Any {
        type_url: TypeUrl::Cluster.as_str().into(),
        value: vec![fill; len],
    }
}

#[test]
fn sotw_frames_are_prosts_encoding() {
    let current = current(false);
    for t in TypeUrl::ALL {
        let packed = current.get(t);
        let all = packed.select(true, &BTreeSet::new());
        let some = {
            let names = all.items.iter().map(|i| i.name.to_string()).step_by(2);
            packed.select(false, &names.collect())
        };
        for (holds, version, nonce) in [
            (&all.holds, "7", "12"),
            (&some.holds, "18446744073709551615", ""),
            (&Held::default(), "", "1"),
        ] {
            let head = SotwHead {
                version_info: version,
                type_url: t.as_str(),
            };
            let wire = sotw(&head, holds).frame(nonce).expect("encode");
            let message = DiscoveryResponse {
                version_info: version.into(),
                resources: holds.to_vec().expect("decode"),
                type_url: t.as_str().into(),
                nonce: nonce.into(),
                ..DiscoveryResponse::default()
            };
            assert_eq!(wire.to_bytes(), prost_frame(&message), "{t}");
            assert_eq!(wire.message_len(), message.encoded_len());
            assert_eq!(wire.decode::<DiscoveryResponse>().expect("decode"), message);
        }
        if t != TypeUrl::Secret && t != TypeUrl::VirtualHost {
            assert!(!all.holds.is_empty(), "{t}: the examples have some");
        }
    }
}

#[test]
fn big_resources_go_through_and_small_ones_are_coalesced() {
    let big = any(PASS_THROUGH + 10, 1);
    let mut anys: Vec<Any> = (0..200).map(|i| any(500, i as u8)).collect();
    anys.insert(100, big.clone());
    let held = Held::from(anys.clone());
    let head = SotwHead {
        version_info: "3",
        type_url: TypeUrl::Cluster.as_str(),
    };
    let wire = sotw(&head, &held).frame("9").expect("encode");
    let message = DiscoveryResponse {
        version_info: "3".into(),
        resources: anys,
        type_url: TypeUrl::Cluster.as_str().into(),
        nonce: "9".into(),
        ..DiscoveryResponse::default()
    };
    assert_eq!(wire.to_bytes(), prost_frame(&message));
    let chunks = wire.into_chunks();
    // One run of one segment, over the pass-through size: sent as is.
    assert_eq!(chunks.len(), 3, "head, the segment's slice, tail");
    assert_eq!(chunks[1], held.slices().next().expect("one run"));
    let segment = held.slices().next().expect("one run");
    assert_eq!(chunks[1].as_ptr(), segment.as_ptr(), "not copied");

    // Small runs are copied into chunks of at most CHUNK bytes.
    let mixed = Held::merged(
        Segment::encode(&[any(900, 1), any(900, 3), big.clone()]),
        Segment::encode(&(0..100).map(|_| any(900, 2)).collect::<Vec<_>>()),
        &[1; 100],
    );
    let wire = sotw(&head, &mixed).frame("9").expect("encode");
    let bytes = wire.to_bytes();
    let chunks = wire.into_chunks();
    assert!(chunks.len() < 10, "{} chunks", chunks.len());
    assert!(
        chunks
            .iter()
            .all(|c| c.len() <= CHUNK || c.len() > PASS_THROUGH)
    );
    let message = DiscoveryResponse {
        version_info: "3".into(),
        resources: mixed.to_vec().expect("decode"),
        type_url: TypeUrl::Cluster.as_str().into(),
        nonce: "9".into(),
        ..DiscoveryResponse::default()
    };
    assert_eq!(bytes, prost_frame(&message));
}

#[test]
fn delta_frames_are_prosts_encoding() {
    // With VHDS: route configuration heads and virtual hosts too.
    let current = current(true);
    assert!(
        !current
            .get(TypeUrl::VirtualHost)
            .select(true, &BTreeSet::new())
            .items
            .is_empty()
    );
    for t in TypeUrl::ALL {
        let selected = current.get(t).select(true, &BTreeSet::new());
        let removed = ["gone".to_string(), String::new(), "also gone".into()];
        for (items, removed, version, nonce) in [
            (selected.items.clone(), &removed[..], "4", "5"),
            (
                selected.items.iter().step_by(3).copied().collect(),
                &[][..],
                "",
                "",
            ),
        ] {
            let resources: Vec<DeltaResource<'_>> = items
                .iter()
                .map(|item| DeltaResource {
                    version: format!("{:016x}", item.version),
                    item: *item,
                })
                .collect();
            let head = DeltaHead {
                system_version_info: version,
                type_url: t.as_str(),
                removed_resources: removed,
            };
            let body = delta(&head, &resources);
            let wire = body.frame(nonce).expect("encode");
            let message = DeltaDiscoveryResponse {
                system_version_info: version.into(),
                resources: items
                    .iter()
                    .map(|item| Resource {
                        name: item.name.into(),
                        version: format!("{:016x}", item.version),
                        resource: Some(Any::decode(item.any()).expect("decode")),
                        ..Resource::default()
                    })
                    .collect(),
                type_url: t.as_str().into(),
                removed_resources: removed.to_vec(),
                nonce: nonce.into(),
                ..DeltaDiscoveryResponse::default()
            };
            assert_eq!(wire.to_bytes(), prost_frame(&message), "{t}");
            assert_eq!(
                wire.decode::<DeltaDiscoveryResponse>().expect("decode"),
                message
            );
        }
    }
}

#[test]
fn one_body_framed_with_each_nonce_is_prosts_encoding() {
    // Delta: `removed_resources` (field 6) comes after the nonce.
    let current = current(true);
    let removed = ["gone".to_string(), String::new()];
    for t in [TypeUrl::Cluster, TypeUrl::VirtualHost] {
        let selected = current.get(t).select(true, &BTreeSet::new());
        let resources: Vec<DeltaResource<'_>> = selected
            .items
            .iter()
            .map(|item| DeltaResource {
                version: format!("{:016x}", item.version),
                item: *item,
            })
            .collect();
        let head = DeltaHead {
            system_version_info: "8",
            type_url: t.as_str(),
            removed_resources: &removed,
        };
        let body = delta(&head, &resources);
        for nonce in ["", "1", &"n".repeat(200)] {
            let message = DeltaDiscoveryResponse {
                system_version_info: "8".into(),
                resources: selected
                    .items
                    .iter()
                    .map(|item| Resource {
                        name: item.name.into(),
                        version: format!("{:016x}", item.version),
                        resource: Some(Any::decode(item.any()).expect("decode")),
                        ..Resource::default()
                    })
                    .collect(),
                type_url: t.as_str().into(),
                removed_resources: removed.to_vec(),
                nonce: nonce.into(),
                ..DeltaDiscoveryResponse::default()
            };
            let wire = body.frame(nonce).expect("encode");
            assert_eq!(
                wire.to_bytes(),
                prost_frame(&message),
                "{t}, nonce {nonce:?}"
            );
        }
    }

    // State of the world: the nonce is the last field; a big run of the
    // shared segment goes into every frame without a copy.
    let big = any(PASS_THROUGH + 10, 1);
    let held = Held::from(vec![any(20, 2), big]);
    let head = SotwHead {
        version_info: "3",
        type_url: TypeUrl::Cluster.as_str(),
    };
    let body = sotw(&head, &held);
    let segment = held.slices().next().expect("one run");
    for nonce in ["41", "42"] {
        let wire = body.frame(nonce).expect("encode");
        let message = DiscoveryResponse {
            version_info: "3".into(),
            resources: held.to_vec().expect("decode"),
            type_url: TypeUrl::Cluster.as_str().into(),
            nonce: nonce.into(),
            ..DiscoveryResponse::default()
        };
        assert_eq!(wire.to_bytes(), prost_frame(&message));
        let chunks = wire.into_chunks();
        assert!(
            chunks.iter().any(|c| c.as_ptr() == segment.as_ptr()),
            "the segment's bytes are shared, not copied"
        );
    }
}
