//! Link the agent against the libtorch that torch-sys found (the project venv's PyPI torch).
//!
//! - An rpath to libtorch's lib directory, so the binaries run without LD_LIBRARY_PATH.
//! - `libtorch_cuda` linked with `--no-as-needed` when the wheel carries it: nothing in our code
//!   references its symbols directly, so under `--as-needed` the linker would drop it and the
//!   agent would silently see no GPU. These go to this package's binaries and tests only, never
//!   to proc-macros (which a global RUSTFLAGS would reach).
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=torch-sys did not report its libtorch directory; no rpath set");
        return;
    };
    let mut args = vec![format!("-Wl,-rpath,{lib}")];
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        args.extend([
            "-Wl,--no-as-needed".to_owned(),
            format!("-L{lib}"),
            "-ltorch_cuda".to_owned(),
            "-Wl,--as-needed".to_owned(),
        ]);
    }
    // `rustc-link-arg` reaches every linked target of this package (the binary and all test
    // binaries, the library's unit tests included) and nothing outside it.
    for arg in args {
        println!("cargo:rustc-link-arg={arg}");
    }
}
