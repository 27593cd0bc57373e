//! Generates the tonic server for `helloworld.Greeter` without protoc: the
//! messages are written by hand in `src/grpc.rs` (prost derive) and the
//! service glue comes from `tonic_build::manual`.

fn main() {
    let method = |name: &str, route: &str, streaming: bool| {
        let builder = tonic_build::manual::Method::builder()
            .name(name)
            .route_name(route)
            .input_type("crate::grpc::HelloRequest")
            .output_type("crate::grpc::HelloReply")
            .codec_path("tonic_prost::ProstCodec");
        if streaming {
            builder.server_streaming().build()
        } else {
            builder.build()
        }
    };
    let greeter = tonic_build::manual::Service::builder()
        .name("Greeter")
        .package("helloworld")
        .method(method("say_hello", "SayHello", false))
        .method(method("say_hello_stream", "SayHelloStream", true))
        .build();
    tonic_build::manual::Builder::new()
        .build_client(false)
        .compile(&[greeter]);
    println!("cargo::rerun-if-changed=build.rs");
}
