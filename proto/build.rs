//! Hermetic code generation: protox parses the .proto files in Rust, so no protoc is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/beard/v1/beard.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
