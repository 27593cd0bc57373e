//! Envoy messages as proto3 canonical JSON, as Envoy's own admin API and
//! `istioctl` print them: camelCase field names, enums by name, `Duration`
//! as `"5s"`, wrappers as plain values, 64-bit integers as strings, and
//! every `Any` as `{"@type": URL, ...its fields}`, recursively (a listener's
//! `HttpConnectionManager` inside its filter's `typed_config`).
//!
//! The generated prost types carry no descriptors, so the conversion goes
//! through [`prost_reflect`] with a descriptor pool built once from
//! `descriptors/envoy.bin`: the `FileDescriptorSet` that `envoy-types`
//! ships, pruned to the files Weft can send (see [`descriptors::ROOTS`])
//! and their dependencies, without source comments. It is checked in, so a
//! clean clone builds without finding another crate's files;
//! `scripts/xds-descriptors.sh` regenerates it and a test fails when it no
//! longer matches the `envoy-types` in `Cargo.lock`.

use std::sync::LazyLock;

use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::Value;

use crate::pb::google::protobuf::Any;

pub mod descriptors;

/// The pruned descriptor set (see the module docs).
static DESCRIPTORS: &[u8] = include_bytes!("../descriptors/envoy.bin");

static POOL: LazyLock<Result<DescriptorPool, String>> =
    LazyLock::new(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| format!("{e}")));

/// Why a message could not be rendered as (or read from) JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The built-in descriptor set is unreadable (a build defect).
    #[error("the built-in Envoy descriptor set is unreadable: {0}")]
    Pool(String),
    /// A message type the descriptor set does not describe.
    #[error(
        "no descriptor for {0:?} (regenerate crates/weft-xds/descriptors with scripts/xds-descriptors.sh, adding its file to descriptors::ROOTS)"
    )]
    UnknownType(String),
    /// A type URL that is not `<host>/<full message name>`.
    #[error("malformed type URL {0:?}")]
    BadTypeUrl(String),
    /// The bytes do not decode as the message.
    #[error("malformed {type_name}: {source}")]
    Decode {
        /// The message's full name.
        type_name: String,
        /// The decoder's error.
        source: prost::DecodeError,
    },
    /// JSON serialization or parsing failed (e.g. an `Any` nested inside
    /// holds a type without descriptor, or the JSON does not fit the type).
    #[error("{type_name} as JSON: {source}")]
    Json {
        /// The message's full name.
        type_name: String,
        /// serde_json's error.
        source: serde_json::Error,
    },
}

/// The descriptor pool every conversion uses.
pub fn pool() -> Result<&'static DescriptorPool, JsonError> {
    POOL.as_ref().map_err(|e| JsonError::Pool(e.clone()))
}

/// The descriptor of the message named `full_name`
/// (`envoy.config.cluster.v3.Cluster`).
pub fn descriptor(full_name: &str) -> Result<MessageDescriptor, JsonError> {
    pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| JsonError::UnknownType(full_name.to_string()))
}

fn options() -> SerializeOptions {
    // The canonical mapping: camelCase names, enum names, 64-bit integers
    // as strings, fields at their default left out (as Envoy prints them).
    SerializeOptions::new()
}

fn render(desc: MessageDescriptor, bytes: &[u8]) -> Result<Value, JsonError> {
    let type_name = desc.full_name().to_string();
    let message = DynamicMessage::decode(desc, bytes).map_err(|source| JsonError::Decode {
        type_name: type_name.clone(),
        source,
    })?;
    message
        .serialize_with_options(serde_json::value::Serializer, &options())
        .map_err(|source| JsonError::Json { type_name, source })
}

/// An `Any` as JSON: `{"@type": URL, ...the packed message's fields}`.
pub fn to_json(any: &Any) -> Result<Value, JsonError> {
    let name = any
        .type_url
        .rsplit_once('/')
        .map(|(_, name)| name)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| JsonError::BadTypeUrl(any.type_url.clone()))?;
    let desc = descriptor(name)?;
    let mut value = render(desc, &any.value)?;
    if let Value::Object(fields) = &mut value {
        // "@type" first, as protobuf's own JSON printers put it.
        let mut out = serde_json::Map::with_capacity(fields.len() + 1);
        out.insert("@type".to_string(), Value::String(any.type_url.clone()));
        out.append(fields);
        value = Value::Object(out);
    }
    Ok(value)
}

/// A message as JSON (its fields, without "@type").
pub fn message_to_json<M: Message + Name>(message: &M) -> Result<Value, JsonError> {
    render(descriptor(&M::full_name())?, &message.encode_to_vec())
}

/// A message read back from its JSON (the inverse of [`message_to_json`];
/// unknown fields are an error).
pub fn message_from_json<M: Message + Name + Default>(json: &Value) -> Result<M, JsonError> {
    let type_name = M::full_name();
    let desc = descriptor(&type_name)?;
    let dynamic = DynamicMessage::deserialize(desc, json).map_err(|source| JsonError::Json {
        type_name: type_name.clone(),
        source,
    })?;
    M::decode(dynamic.encode_to_vec().as_slice())
        .map_err(|source| JsonError::Decode { type_name, source })
}

#[cfg(test)]
mod tests;
