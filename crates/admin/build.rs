//! Build script: compiles `proto/prism/*.proto` into Rust (messages, client and server) with the
//! pure-Rust `protox` compiler, so building needs no system `protoc`.

use std::io;

const PROTO_ROOT: &str = "../../proto";
const PROTOS: &[&str] = &[
    "../../proto/prism/control_plane.proto",
    "../../proto/prism/options.proto",
];

fn main() -> io::Result<()> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, [PROTO_ROOT]).map_err(io::Error::other)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Sorted maps: deterministic iteration, equality and encoding order.
        .btree_map(".")
        // Messages carrying connection strings or credentials get a redacting `Debug` by hand
        // (src/admin/proto.rs), so no `{:?}` can leak a secret.
        .skip_debug(["prism.BackendConfig", "prism.BackendProcessConfig"])
        .compile_fds(descriptors)
}
