//! File formats that both the coordinator and the agent read, without libtorch.
//!
//! - [`torchfile`]: PyTorch `torch.save` files (zip + pickle) without Python: a reader, and a
//!   writer for state dicts and distilled sets.
//! - [`state_dict`]: a model's named tensors from a checkpoint (safetensors or a PyTorch
//!   state-dict file), and back to either format.
//! - [`convnet`]: the DC-bench ConvNet's shape read off a state dict's names and shapes, so a
//!   checkpoint can be checked (and its config inferred) before any agent loads it.

pub mod convnet;
pub mod state_dict;
pub mod torchfile;
