//! gRPC: `helloworld.Greeter` and `grpc.health.v1.Health` (SERVING).
//!
//! The wire is the standard helloworld proto, with two streaming methods
//! and two optional fields added (old clients never send them):
//!
//! ```proto
//! package helloworld;
//! service Greeter {
//!   rpc SayHello (HelloRequest) returns (HelloReply) {}
//!   rpc SayHelloStream (HelloRequest) returns (stream HelloReply) {}
//!   rpc SayHelloChat (stream HelloRequest) returns (stream HelloReply) {}
//! }
//! message HelloRequest { string name = 1; uint32 count = 2; uint32 fail_with = 3; }
//! message HelloReply { string message = 1; }
//! ```
//!
//! `SayHello` answers "Hello NAME from SERVICE VERSION";
//! `SayHelloStream` sends `count` such replies (3 if unset, at most
//! [`MAX_STREAM`]), each ending in " (I/N)", then ends OK — or, with
//! `fail_with` set, with that gRPC status code ("failing on request after
//! N replies") and the trailer `x-sample-trailer: failed`;
//! `SayHelloChat` answers each request as soon as it arrives (a client
//! may wait for each reply before it sends the next) and ends OK when the
//! client's stream does. Replies carry the `x-sample-name` and
//! `x-sample-version` metadata.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_health::ServingStatus;

use crate::flaky::{Counter, Turn};
use crate::{DRAIN_TIMEOUT, Error, Flaky, stopped};

/// The generated server glue (`build.rs`).
#[allow(
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    unused_qualifications
)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/helloworld.Greeter.rs"));
}

use generated::greeter_server::{Greeter as GreeterService, GreeterServer};

/// Most replies `SayHelloStream` sends.
pub(crate) const MAX_STREAM: u32 = 1000;
/// Replies `SayHelloStream` sends when the request names no count.
const DEFAULT_STREAM: u32 = 3;

/// `helloworld.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    /// How many replies `SayHelloStream` sends (0: the default, 3).
    #[prost(uint32, tag = "2")]
    pub(crate) count: u32,
    /// The gRPC status code `SayHelloStream` ends with after its replies
    /// (0: OK).
    #[prost(uint32, tag = "3")]
    pub(crate) fail_with: u32,
}

/// `helloworld.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub(crate) message: String,
}

/// The greeter, labelled with the sample's name and version.
#[derive(Clone, Debug)]
pub(crate) struct Greeter {
    name: Arc<str>,
    version: Arc<str>,
    flaky: Arc<Counter>,
}

impl Greeter {
    pub(crate) fn new(name: &str, version: &str, flaky: Flaky) -> Self {
        Greeter {
            name: name.into(),
            version: version.into(),
            flaky: Arc::new(Counter::new(flaky)),
        }
    }

    fn greeting(&self, who: &str) -> String {
        format!("Hello {who} from {} {}", self.name, self.version)
    }

    /// A response with the sample's labels as metadata.
    fn labelled<T>(&self, message: T) -> Response<T> {
        let mut resp = Response::new(message);
        // Both were checked as header values at start-up.
        for (key, value) in [
            ("x-sample-name", &self.name),
            ("x-sample-version", &self.version),
        ] {
            if let Ok(value) = MetadataValue::try_from(&**value) {
                resp.metadata_mut().insert(key, value);
            }
        }
        resp
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

#[tonic::async_trait]
impl GreeterService for Greeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        match self.flaky.next() {
            Turn::Fail => return Err(Status::unavailable("flaky: failing on purpose")),
            Turn::Stall(d) => tokio::time::sleep(d).await,
            Turn::Serve => {}
        }
        let message = self.greeting(&request.get_ref().name);
        Ok(self.labelled(HelloReply { message }))
    }

    type SayHelloStreamStream = ReplyStream;

    async fn say_hello_stream(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let request = request.into_inner();
        let n = match request.count {
            0 => DEFAULT_STREAM,
            n if n <= MAX_STREAM => n,
            n => {
                return Err(Status::invalid_argument(format!(
                    "count is at most {MAX_STREAM}, not {n}"
                )));
            }
        };
        let greeting = self.greeting(&request.name);
        let replies = (1..=n).map(move |i| {
            Ok(HelloReply {
                message: format!("{greeting} ({i}/{n})"),
            })
        });
        let end = match Code::from_i32(i32::try_from(request.fail_with).unwrap_or(i32::MAX)) {
            Code::Ok => None,
            code => {
                let mut trailers = MetadataMap::new();
                trailers.insert("x-sample-trailer", MetadataValue::from_static("failed"));
                Some(Err(Status::with_metadata(
                    code,
                    format!("failing on request after {n} replies"),
                    trailers,
                )))
            }
        };
        let stream = futures_util::stream::iter(replies.chain(end));
        Ok(self.labelled(Box::pin(stream) as ReplyStream))
    }

    type SayHelloChatStream = ReplyStream;

    async fn say_hello_chat(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let greeter = self.clone();
        let replies = request.into_inner().map(move |r| {
            r.map(|r| HelloReply {
                message: greeter.greeting(&r.name),
            })
        });
        Ok(self.labelled(Box::pin(replies) as ReplyStream))
    }
}

/// Serves the greeter and health until `stop`; health turns NOT_SERVING
/// first, then open calls get up to [`DRAIN_TIMEOUT`] to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    greeter: Greeter,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<GreeterServer<Greeter>>().await;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let (drain_tx, drain_rx) = watch::channel(false);
    let signal = {
        let health = health.clone();
        async move {
            stopped(stop).await;
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            health.set_not_serving::<GreeterServer<Greeter>>().await;
            let _ = drain_tx.send(true);
        }
    };
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(GreeterServer::new(greeter))
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.map_err(Error::from),
        () = stopped(drain_rx) => {}
    }
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(result) => result.map_err(Error::from),
        Err(_) => {
            tracing::warn!("grpc: calls still open after the drain timeout");
            Ok(())
        }
    }
}
