//! Link the agent against the libtorch that torch-sys found (the project venv's PyPI torch).
//!
//! - The C++ that tch has no API for, compiled against libtorch's headers: the precision shim
//!   (`src/precision/shim.cpp`, the float32 settings of libtorch's global context) and the fused
//!   ReLU + average pooling of a ConvNet block (`src/model/relu_pool.cpp`), the fused instance
//!   norm + ReLU + pooling (`src/model/instance_norm_pool.cpp`) and the first convolution's
//!   direct kernels (`src/model/first_conv.cpp`), a task's own random generator
//!   (`src/random/generator.cpp`), and CUDA graph capture (`src/graph/capture.cpp`, built with
//!   `BEARD_CUDA_GRAPHS` when the wheel carries CUDA and the CUDA runtime's headers).
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
        "src/graph/capture.cpp",
        "src/random/generator.cpp",
    ];
    for source in sources.iter().chain(&["src/native.h", "src/model/pool_rows.h", "src/model/verified.h"]) {
        println!("cargo:rerun-if-changed={source}");
    }
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not report its libtorch directory (DEP_TCH_LIBTORCH_LIB)");
    };
    let include = Path::new(&lib).join("../include");
    let cuda_include = cuda_runtime_headers(Path::new(&lib));
    let mut build = cc::Build::new();
    if let Some(cuda_include) = &cuda_include {
        build.includes(cuda_include).define("BEARD_CUDA_GRAPHS", None);
    }
    build
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
            "-lc10_cuda".to_owned(),
            "-Wl,--as-needed".to_owned(),
        ]);
    }
    // `rustc-link-arg` reaches every linked target of this package (the binary and all test
    // binaries, the library's unit tests included) and nothing outside it.
    for arg in args {
        println!("cargo:rustc-link-arg={arg}");
    }
}

/// The include directories of the CUDA runtime's headers for the CUDA graph shim, when the
/// libtorch in `lib` carries CUDA: `cuda_runtime_api.h` and the `crt/host_config.h` it includes,
/// from the `nvidia` packages beside torch (`nvidia/cu13/include` for CUDA 13 wheels,
/// `nvidia/cuda_runtime/include` for CUDA 12 ones), from Triton's copy (torch's CUDA wheels
/// depend on Triton, whose copy has `crt/`, which the runtime packages leave to the compiler's),
/// or from `$CUDA_HOME/include`. None (and no graphs) when any of them is missing.
fn cuda_runtime_headers(lib: &Path) -> Option<Vec<std::path::PathBuf>> {
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    if !lib.join("libtorch_cuda.so").exists() {
        return None;
    }
    let site_packages = lib.join("../..");
    let mut candidates: Vec<std::path::PathBuf> = std::fs::read_dir(site_packages.join("nvidia"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("include"))
        .collect();
    candidates.sort();
    candidates.push(site_packages.join("triton/backends/nvidia/include"));
    candidates.extend(std::env::var_os("CUDA_HOME").map(|home| Path::new(&home).join("include")));
    let holding = |header: &str| candidates.iter().find(|dir| dir.join(header).exists()).cloned();
    let found = holding("cuda_runtime_api.h").zip(holding("crt/host_config.h"));
    if found.is_none() {
        println!(
            "cargo:warning=no CUDA runtime headers beside {}: the agent is built without CUDA graphs",
            lib.display()
        );
    }
    found.map(|(runtime, crt)| vec![runtime, crt])
}
