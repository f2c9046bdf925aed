//! The work behind the agent's offline subcommands, which run without a coordinator: the binary
//! parses flags into these modules' configs and prints what they return.
//!
//! - [`datasets`]: `agent datasets fetch`, a dataset's official archive downloaded, verified and
//!   unpacked.
//! - [`eval`]: `agent eval`, a checkpoint's clean and robust accuracy on a dataset's test split.
//! - [`export`]: `agent export`, a checkpoint re-encoded as safetensors or a PyTorch file.

pub mod datasets;
pub mod eval;
pub mod export;
