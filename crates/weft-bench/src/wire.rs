//! The wire side of a simulated sidecar: `DiscoveryResponse`s read as a
//! stream of bytes, never held whole, and `DiscoveryRequest`s encoded
//! straight from the client's (shared) subscription names.
//!
//! An Envoy-like state-of-the-world client needs very little of a
//! response to ACK it and to follow it: the version, nonce and type URL,
//! and — for CDS and LDS only — the names it subscribes to next (the EDS
//! clusters, the RDS route configurations). [`Reader`] walks the protobuf
//! encoding chunk by chunk as HTTP/2 DATA frames arrive: each resource is
//! either skipped (EDS, RDS) or copied out alone and decoded (one Cluster
//! or Listener at a time), so a client's memory does not grow with the
//! size of the responses it gets.

use std::future::Future;

use anyhow::{Context, Result, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};
use weft_xds::TypeUrl;
use weft_xds::pb::envoy::config::core::v3::Node;
use weft_xds::pb::envoy::config::listener::v3::{Filter, Listener, filter};
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};

/// Where a [`Reader`] gets its bytes: the DATA frames of one stream.
pub trait Source {
    /// The next chunk; `None` at the end of the stream.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>>> + Send;
}

impl Source for h2::RecvStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self.data().await {
            Some(Ok(chunk)) => {
                // Consumed as soon as it is here: let the server send more.
                let _ = self.flow_control().release_capacity(chunk.len());
                Ok(Some(chunk))
            }
            Some(Err(e)) => Err(e).context("read the ADS stream"),
            None => Ok(None),
        }
    }
}

/// What a client keeps of one `DiscoveryResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// `version_info`.
    pub version: String,
    /// `nonce`.
    pub nonce: String,
    /// `type_url`.
    pub type_url: String,
    /// Resources in the response.
    pub resources: u64,
    /// Encoded bytes of the resources (the `Any` values).
    pub bytes: u64,
    /// For CDS: the EDS clusters; for LDS: the RDS route configurations the
    /// listeners name (sorted, deduplicated). Empty for other types.
    pub follow: Vec<String>,
    /// Delta: `removed_resources`.
    pub removed: Vec<String>,
}

/// Reads gRPC-framed `DiscoveryResponse`s from a [`Source`].
#[derive(Debug)]
pub struct Reader<S> {
    source: S,
    /// Reads `DeltaDiscoveryResponse`s (else `DiscoveryResponse`s).
    delta: bool,
    chunk: Bytes,
    /// Bytes consumed so far (message bounds are positions).
    pos: u64,
}

/// Largest response accepted (as tonic's `max_decoding_message_size` was).
const MAX_MESSAGE: u64 = 512 << 20;

/// What is needed of a resource's value, by its `Any.type_url`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Skip,
    Cluster,
    Listener,
}

impl<S: Source> Reader<S> {
    /// A reader at the start of a stream.
    pub fn new(source: S) -> Self {
        Reader {
            source,
            delta: false,
            chunk: Bytes::new(),
            pos: 0,
        }
    }

    /// A reader of `DeltaDiscoveryResponse`s (each resource wrapped in a
    /// `Resource`, `removed_resources` kept).
    pub fn delta(source: S) -> Self {
        Reader {
            delta: true,
            ..Reader::new(source)
        }
    }

    /// The source (for the trailers once the stream has ended).
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// Makes `chunk` non-empty; false at the end of the stream.
    async fn fill(&mut self) -> Result<bool> {
        while self.chunk.is_empty() {
            match self.source.next_chunk().await? {
                Some(c) => self.chunk = c,
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    async fn byte(&mut self) -> Result<u8> {
        if !self.fill().await? {
            bail!("the stream ended inside a message");
        }
        self.pos += 1;
        Ok(self.chunk.get_u8())
    }

    async fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte().await?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("malformed varint")
    }

    async fn skip(&mut self, mut n: u64) -> Result<()> {
        while n > 0 {
            if !self.fill().await? {
                bail!("the stream ended inside a message");
            }
            let k = n.min(self.chunk.len() as u64);
            self.chunk.advance(k as usize);
            self.pos += k;
            n -= k;
        }
        Ok(())
    }

    /// The next `n` bytes (a slice of the chunk when it holds them all).
    async fn take(&mut self, n: u64) -> Result<Bytes> {
        if !self.fill().await? {
            bail!("the stream ended inside a message");
        }
        if self.chunk.len() as u64 >= n {
            self.pos += n;
            return Ok(self.chunk.split_to(n as usize));
        }
        let mut out = BytesMut::with_capacity(n as usize);
        while (out.len() as u64) < n {
            if !self.fill().await? {
                bail!("the stream ended inside a message");
            }
            let k = (n - out.len() as u64).min(self.chunk.len() as u64) as usize;
            out.extend_from_slice(&self.chunk.split_to(k));
            self.pos += k as u64;
        }
        Ok(out.freeze())
    }

    async fn string(&mut self, n: u64) -> Result<String> {
        let b = self.take(n).await?;
        String::from_utf8(b.to_vec()).context("a string field is not UTF-8")
    }

    /// Skips a field of wire type `wire` (its key already read).
    async fn skip_field(&mut self, wire: u64) -> Result<()> {
        match wire {
            0 => self.varint().await.map(drop),
            1 => self.skip(8).await,
            2 => {
                let n = self.varint().await?;
                self.skip(n).await
            }
            5 => self.skip(4).await,
            w => bail!("unsupported wire type {w}"),
        }
    }

    /// The next response; `None` when the stream ends between messages.
    pub async fn next(&mut self) -> Result<Option<Response>> {
        if !self.fill().await? {
            return Ok(None);
        }
        let compressed = self.byte().await?;
        if compressed != 0 {
            bail!("a compressed gRPC message (none was asked for)");
        }
        let mut len = 0u64;
        for _ in 0..4 {
            len = len << 8 | u64::from(self.byte().await?);
        }
        if len > MAX_MESSAGE {
            bail!("a response of {len} bytes (more than {MAX_MESSAGE})");
        }
        let end = self.pos + len;
        let mut out = Response::default();
        while self.pos < end {
            let key = self.varint().await?;
            let (field, wire) = (key >> 3, key & 7);
            if wire != 2 {
                self.skip_field(wire).await?;
                continue;
            }
            let n = self.varint().await?;
            if self.pos + n > end {
                bail!("a field runs past the end of its response");
            }
            match field {
                1 => out.version = self.string(n).await?,
                2 if self.delta => self.delta_resource(n, &mut out).await?,
                2 => self.resource(n, &mut out).await?,
                4 => out.type_url = self.string(n).await?,
                5 => out.nonce = self.string(n).await?,
                6 if self.delta => out.removed.push(self.string(n).await?),
                _ => self.skip(n).await?,
            }
        }
        if self.pos != end {
            bail!("a field runs past the end of its response");
        }
        out.follow.sort();
        out.follow.dedup();
        Ok(Some(out))
    }

    /// One delta `Resource` of `n` bytes: its `Any` read as [`Reader::resource`]
    /// does, the rest skipped.
    async fn delta_resource(&mut self, n: u64, out: &mut Response) -> Result<()> {
        let end = self.pos + n;
        while self.pos < end {
            let key = self.varint().await?;
            let (field, wire) = (key >> 3, key & 7);
            if wire != 2 {
                self.skip_field(wire).await?;
                continue;
            }
            let n = self.varint().await?;
            if self.pos + n > end {
                bail!("a field runs past the end of its resource");
            }
            match field {
                2 => self.resource(n, out).await?,
                _ => self.skip(n).await?,
            }
        }
        if self.pos != end {
            bail!("a field runs past the end of its resource");
        }
        Ok(())
    }

    /// One `Any` of `n` bytes: counted, and its names taken when needed.
    async fn resource(&mut self, n: u64, out: &mut Response) -> Result<()> {
        let end = self.pos + n;
        let mut need = Need::Skip;
        out.resources += 1;
        while self.pos < end {
            let key = self.varint().await?;
            let (field, wire) = (key >> 3, key & 7);
            if wire != 2 {
                self.skip_field(wire).await?;
                continue;
            }
            let n = self.varint().await?;
            if self.pos + n > end {
                bail!("a field runs past the end of its resource");
            }
            match field {
                1 => {
                    let t = self.take(n).await?;
                    need = if t == TypeUrl::Cluster.as_str().as_bytes() {
                        Need::Cluster
                    } else if t == TypeUrl::Listener.as_str().as_bytes() {
                        Need::Listener
                    } else {
                        Need::Skip
                    };
                }
                2 => {
                    out.bytes += n;
                    match need {
                        Need::Skip => self.skip(n).await?,
                        Need::Cluster => {
                            let c = LeanCluster::decode(self.take(n).await?)
                                .context("decode a Cluster")?;
                            if c.discovery_type == Some(EDS) {
                                out.follow.push(c.name);
                            }
                        }
                        Need::Listener => {
                            let l = Listener::decode(self.take(n).await?)
                                .context("decode a Listener")?;
                            route_names(&l, &mut out.follow)?;
                        }
                    }
                }
                _ => self.skip(n).await?,
            }
        }
        if self.pos != end {
            bail!("a field runs past the end of its resource");
        }
        Ok(())
    }
}

/// A `Cluster`'s name and discovery type only.
#[derive(Clone, PartialEq, Message)]
struct LeanCluster {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, optional, tag = "2")]
    discovery_type: Option<i32>,
}

/// `Cluster.DiscoveryType.EDS`.
const EDS: i32 = 3;

/// Adds the RDS route configuration names a listener's HTTP connection managers name.
fn route_names(l: &Listener, names: &mut Vec<String>) -> Result<()> {
    let mut visit = |f: &Filter| -> Result<()> {
        if let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type
            && any.type_url.ends_with("HttpConnectionManager")
        {
            let hcm = HttpConnectionManager::decode(any.value.as_slice())
                .context("decode an HttpConnectionManager")?;
            if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                names.push(rds.route_config_name);
            }
        }
        Ok(())
    };
    for chain in l.filter_chains.iter().chain(l.default_filter_chain.iter()) {
        for f in &chain.filters {
            visit(f)?;
        }
    }
    Ok(())
}

/// One gRPC-framed `DiscoveryRequest` (fields as prost would encode them).
pub fn request(
    node: Option<&Node>,
    version: &str,
    names: &[String],
    type_url: &str,
    nonce: &str,
) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u8(0);
    buf.put_u32(0);
    let string = |tag: u32, s: &str, buf: &mut BytesMut| {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.put_slice(s.as_bytes());
    };
    if !version.is_empty() {
        string(1, version, &mut buf);
    }
    if let Some(node) = node {
        prost::encoding::message::encode(2, node, &mut buf);
    }
    for name in names {
        string(3, name, &mut buf);
    }
    string(4, type_url, &mut buf);
    if !nonce.is_empty() {
        string(5, nonce, &mut buf);
    }
    let len = u32::try_from(buf.len() - 5).unwrap_or(u32::MAX);
    buf[1..5].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

/// One gRPC-framed `DeltaDiscoveryRequest` (fields as prost would encode
/// them): a subscription change, or with `nonce` an ACK.
pub fn delta_request(
    node: Option<&Node>,
    type_url: &str,
    subscribe: &[String],
    unsubscribe: &[String],
    nonce: &str,
) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u8(0);
    buf.put_u32(0);
    let string = |tag: u32, s: &str, buf: &mut BytesMut| {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.put_slice(s.as_bytes());
    };
    if let Some(node) = node {
        prost::encoding::message::encode(1, node, &mut buf);
    }
    string(2, type_url, &mut buf);
    for name in subscribe {
        string(3, name, &mut buf);
    }
    for name in unsubscribe {
        string(4, name, &mut buf);
    }
    if !nonce.is_empty() {
        string(6, nonce, &mut buf);
    }
    let len = u32::try_from(buf.len() - 5).unwrap_or(u32::MAX);
    buf[1..5].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests;
