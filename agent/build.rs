//! Link the agent against the libtorch that torch-sys found (the project venv's PyPI torch).
//!
//! - The C++ that tch has no API for, compiled against libtorch's headers: the precision shim
//!   (`src/precision/shim.cpp`, the float32 settings of libtorch's global context) and the fused
//!   ReLU + average pooling of a ConvNet block (`src/model/relu_pool.cpp`), the fused instance
//!   norm + ReLU + pooling (`src/model/instance_norm_pool.cpp`) and the first convolution's
//!   direct kernels (`src/model/first_conv.cpp`).
//! - An rpath to libtorch's lib directory, so the binaries run without LD_LIBRARY_PATH.
//! - `libtorch_cuda` linked with `--no-as-needed` when the wheel carries it: nothing in our code
//!   references its symbols directly, so under `--as-needed` the linker would drop it and the
//!   agent would silently see no GPU. These go to this package's binaries and tests only, never
//!   to proc-macros (which a global RUSTFLAGS would reach).
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let sources = [
        "src/precision/shim.cpp",
        "src/model/relu_pool.cpp",
        "src/model/first_conv.cpp",
        "src/model/instance_norm_pool.cpp",
    ];
    for source in sources.iter().chain(&["src/model/native.h", "src/model/pool_rows.h", "src/model/verified.h"]) {
        println!("cargo:rerun-if-changed={source}");
    }
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not report its libtorch directory (DEP_TCH_LIBTORCH_LIB)");
    };
    let include = Path::new(&lib).join("../include");
    cc::Build::new()
        .cpp(true)
        .files(sources)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        // libtorch's `at::parallel_for` is an inline OpenMP loop: without OpenMP it runs on one thread.
        .flag("-fopenmp")
        // The kernels reproduce libtorch's rounding step by step: no multiply-add is fused
        // unless the source asks for it.
        .flag("-ffp-contract=off")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false)
        .compile("beard_native");
    let mut args = vec![format!("-Wl,-rpath,{lib}")];
    // The OpenMP runtime libtorch itself loads (the wheel's own libgomp), so there is one thread
    // pool; a libtorch without one shares the system's.
    let wheel_openmp = Path::new(&lib).join("libgomp.so.1");
    if wheel_openmp.exists() {
        args.push(wheel_openmp.display().to_string());
    } else {
        println!("cargo:rustc-link-lib=dylib=gomp");
    }
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
