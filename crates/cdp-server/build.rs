//! Compiles `proto/cdp/v1/*.proto` with protox (no system `protoc`) into
//! the tonic client and server code, and keeps the file descriptor set for
//! server reflection.

use std::path::PathBuf;

use prost::Message as _;

const PROTOS: [&str; 4] = [
    "cdp/v1/common.proto",
    "cdp/v1/profile.proto",
    "cdp/v1/features.proto",
    "cdp/v1/scoring.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let descriptors = protox::compile(PROTOS, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("cdp_v1_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
