//! The xDS streams' request decoder: gRPC frames of a request body in,
//! messages out, with a buffer that lives only while a message is
//! incomplete.
//!
//! tonic's `Streaming` keeps one `BytesMut` per stream that grows to the
//! largest request (a state-of-the-world EDS request names every cluster:
//! ≈ 120 KiB at 1 000 services) and keeps that allocation for the
//! stream's life. Here a request that arrives whole in one data frame is
//! decoded from that frame, and a request split over several is gathered
//! into a buffer that is freed once it is decoded.

use std::future::Future;
use std::marker::PhantomData;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use prost::Message;
use tonic::body::Body;
use tonic::{Status, Streaming};

use super::wire::HEADER;

/// Where a stream's requests come from.
pub(crate) trait Requests<M>: Send + 'static {
    /// The next request; `None` once the client has closed its side.
    fn message(&mut self) -> impl Future<Output = Result<Option<M>, Status>> + Send;
}

impl<M: Message + Default + Send + 'static> Requests<M> for Streaming<M> {
    fn message(&mut self) -> impl Future<Output = Result<Option<M>, Status>> + Send {
        Streaming::message(self)
    }
}

/// The requests of a gRPC request body, uncompressed.
pub(crate) struct RequestBody<M> {
    body: Body,
    /// Data received that isn't a whole message yet; empty (no
    /// allocation) between messages.
    buf: BytesMut,
    /// The data frame being read, when `buf` is empty.
    frame: Bytes,
    /// The body has ended.
    done: bool,
    max_message: usize,
    _message: PhantomData<fn() -> M>,
}

impl<M> RequestBody<M> {
    /// The requests of `body`; a message over `max_message` bytes ends
    /// the stream with OUT_OF_RANGE (as tonic's limit does).
    pub(crate) fn new(body: Body, max_message: usize) -> RequestBody<M> {
        RequestBody {
            body,
            buf: BytesMut::new(),
            frame: Bytes::new(),
            done: false,
            max_message,
            _message: PhantomData,
        }
    }
}

/// How long the message starting at `data` is, if its header is there.
fn message_len(data: &[u8], max: usize) -> Result<Option<usize>, Status> {
    if data.len() < HEADER {
        return Ok(None);
    }
    match data[0] {
        0 => {}
        1 => {
            return Err(Status::unimplemented(
                "Message compressed, compression not supported",
            ));
        }
        flag => {
            return Err(Status::internal(format!(
                "protocol error: received message with invalid compression flag: {flag} \
                 (valid flags are 0 and 1)"
            )));
        }
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    if len > max {
        return Err(Status::out_of_range(format!(
            "Error, decoded message length too large: found {len} bytes, the limit is: {max} bytes"
        )));
    }
    Ok(Some(len))
}

fn decode<M: Message + Default>(message: &[u8]) -> Result<M, Status> {
    M::decode(message).map_err(|e| Status::internal(format!("decoding a request: {e}")))
}

impl<M: Message + Default> RequestBody<M> {
    /// A whole message from what was received, if there is one.
    fn next_message(&mut self) -> Result<Option<M>, Status> {
        if self.buf.is_empty() {
            // Straight from the frame while messages are whole in it.
            let Some(len) = message_len(&self.frame, self.max_message)? else {
                return Ok(None);
            };
            if self.frame.len() < HEADER + len {
                return Ok(None);
            }
            let message = decode(&self.frame[HEADER..HEADER + len])?;
            self.frame.advance(HEADER + len);
            if self.frame.is_empty() {
                self.frame = Bytes::new(); // let go of h2's buffer
            }
            return Ok(Some(message));
        }
        let Some(len) = message_len(&self.buf, self.max_message)? else {
            return Ok(None);
        };
        if self.buf.len() < HEADER + len {
            self.buf.reserve(HEADER + len - self.buf.len());
            return Ok(None);
        }
        let message = decode(&self.buf[HEADER..HEADER + len])?;
        self.buf.advance(HEADER + len);
        if self.buf.is_empty() {
            self.buf = BytesMut::new(); // free it between messages
        }
        Ok(Some(message))
    }

    async fn next(&mut self) -> Result<Option<M>, Status> {
        loop {
            if let Some(message) = self.next_message()? {
                return Ok(Some(message));
            }
            // Part of a message is left in the frame: gather it.
            if !self.frame.is_empty() {
                self.buf.extend_from_slice(&self.frame);
                self.frame = Bytes::new();
                if let Some(message) = self.next_message()? {
                    return Ok(Some(message));
                }
            }
            if self.done {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Status::internal("the stream ended inside a message"))
                };
            }
            match self.body.frame().await {
                None => self.done = true,
                Some(Err(status)) => return Err(status),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if self.buf.is_empty() {
                            self.frame = data;
                        } else {
                            self.buf.extend_from_slice(&data);
                        }
                    }
                }
            }
        }
    }
}

impl<M: Message + Default + Send + 'static> Requests<M> for RequestBody<M> {
    fn message(&mut self) -> impl Future<Output = Result<Option<M>, Status>> + Send {
        self.next()
    }
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;
    use http_body_util::StreamBody;
    use weft_xds::pb::envoy::service::discovery::v3::DiscoveryRequest;

    use super::*;

    fn request(names: usize) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: "t".into(),
            resource_names: (0..names)
                .map(|i| format!("outbound|9080||svc-{i}"))
                .collect(),
            ..DiscoveryRequest::default()
        }
    }

    fn framed(m: &DiscoveryRequest) -> Vec<u8> {
        let mut out = vec![0];
        out.put_u32(m.encoded_len() as u32);
        m.encode(&mut out).expect("encode");
        out
    }

    fn body(chunks: Vec<Vec<u8>>) -> Body {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, Status>(http_body::Frame::data(Bytes::from(c))));
        Body::new(StreamBody::new(tokio_stream::iter(frames)))
    }

    async fn all(chunks: Vec<Vec<u8>>) -> (Vec<DiscoveryRequest>, Option<Status>) {
        let mut requests = RequestBody::<DiscoveryRequest>::new(body(chunks), 1 << 20);
        let mut out = Vec::new();
        loop {
            match requests.message().await {
                Ok(Some(m)) => {
                    out.push(m);
                    assert_eq!(
                        requests.buf.capacity(),
                        0,
                        "no buffer kept between messages"
                    );
                }
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[tokio::test]
    async fn messages_whole_split_and_several_per_frame() {
        let (a, b, c) = (request(1), request(3000), request(0));
        let (fa, fb, fc) = (framed(&a), framed(&b), framed(&c));
        // a and the start of b in one frame, b's rest over three frames
        // (one of them shorter than a header), then c whole.
        let mut first = fa.clone();
        first.extend_from_slice(&fb[..3]);
        let chunks = vec![
            first,
            fb[3..1000].to_vec(),
            fb[1000..].to_vec(),
            fc.clone(),
            Vec::new(),
        ];
        let (got, error) = all(chunks).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(got, vec![a.clone(), b.clone(), c.clone()]);
        // Byte by byte.
        let bytes: Vec<Vec<u8>> = fa.iter().chain(&fc).map(|b| vec![*b]).collect();
        assert_eq!(all(bytes).await.0, vec![a, c]);
    }

    #[tokio::test]
    async fn bad_frames_end_the_stream_with_a_status() {
        let mut compressed = framed(&request(1));
        compressed[0] = 1;
        let (_, e) = all(vec![compressed]).await;
        assert_eq!(e.expect("error").code(), tonic::Code::Unimplemented);
        let mut big = vec![0];
        big.put_u32(2 << 20);
        let (_, e) = all(vec![big]).await;
        assert_eq!(e.expect("error").code(), tonic::Code::OutOfRange);
        let whole = framed(&request(2));
        let (got, e) = all(vec![whole[..whole.len() - 1].to_vec()]).await;
        assert!(got.is_empty());
        assert_eq!(e.expect("error").code(), tonic::Code::Internal);
        let (_, e) = all(vec![vec![7, 0, 0, 0, 0]]).await;
        assert_eq!(e.expect("error").code(), tonic::Code::Internal);
    }
}
