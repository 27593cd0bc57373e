//! Generates the tonic server for `helloworld.Greeter` without protoc: the
//! messages are written by hand in `src/grpc.rs` (prost derive) and the
//! service glue comes from `tonic_build::manual`.

fn main() {
    // (name, route, client streaming, server streaming)
    let method = |name: &str, route: &str, client: bool, server: bool| {
        let mut builder = tonic_build::manual::Method::builder()
            .name(name)
            .route_name(route)
            .input_type("crate::grpc::HelloRequest")
            .output_type("crate::grpc::HelloReply")
            .codec_path("tonic_prost::ProstCodec");
        if client {
            builder = builder.client_streaming();
        }
        if server {
            builder = builder.server_streaming();
        }
        builder.build()
    };
    let greeter = tonic_build::manual::Service::builder()
        .name("Greeter")
        .package("helloworld")
        .method(method("say_hello", "SayHello", false, false))
        .method(method("say_hello_stream", "SayHelloStream", false, true))
        .method(method("say_hello_chat", "SayHelloChat", true, true))
        .build();
    tonic_build::manual::Builder::new()
        .build_client(false)
        .compile(&[greeter]);
    println!("cargo::rerun-if-changed=build.rs");
}
