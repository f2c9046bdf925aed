//! The work behind the agent's offline subcommands, which run without a coordinator: the binary
//! parses flags into these modules' configs and prints what they return.
//!
//! - [`eval`]: `agent eval`, a checkpoint's clean and robust accuracy on a dataset's test split.
//! - [`export`]: `agent export`, a checkpoint re-encoded as safetensors or a PyTorch file.

pub mod eval;
pub mod export;
