//! The beard-rs agent: leases tasks from the coordinator, trains DC-bench ConvNets and attacks
//! them with libtorch, and sends back checkpoints and result shards.
//!
//! # Layout
//!
//! - [`backend`]: the `Backend` trait between the worker and the ML work.
//! - [`tch_backend`]: the libtorch implementation, built from:
//!   - [`data`]: datasets (the built-in `synthetic` one, CIFAR-10/100 and TinyImageNet, and
//!     downloading their official archives) and distilled-set sources (`random`, files);
//!   - [`model`]: the ConvNet family with normalization inside the model;
//!   - [`train`]: training a model on a distilled set;
//!   - [`augment`]: DSA augmentation of training batches;
//!   - [`distill`]: dataset distillation (DM), synthetic sets learned from a training split;
//!   - [`attacks`]: one module per attack behind one trait;
//!   - [`eval`]: one attack task to one result shard;
//!   - [`transfer`]: the models of a transfer task judging the examples crafted on its source.
//! - [`attack_spec`]: attack specs as the command line writes them (`pgd:eps=8/255,steps=10`).
//! - [`bench`]: attack throughput on this machine (`agent bench`), without a coordinator.
//! - [`graph`]: CUDA graphs for the attacks' long loops of small steps, verified before use.
//! - [`precision`]: exact float32 on GPUs (TF32 off, deterministic cuDNN) and its description.
//! - `native`: the C boundary of the agent's C++ (errors as messages, never exceptions).
//! - [`random`]: a task's own libtorch random generator, so side-by-side work cannot shift its
//!   draws.
//! - [`host_memory`]: the C allocator's settings for the host memory of CPU tensors.
//! - [`cli`]: the offline commands `agent eval` (a checkpoint's clean and robust accuracy),
//!   `agent export` (a checkpoint as safetensors or a PyTorch file) and `agent datasets fetch`.
//! - [`host_tensor`]: tensors decoded from files (`beard_formats`) as libtorch tensors.
//! - [`worker`]: registration, the lease loop, heartbeats, cancellation and drain.
//! - [`work_dir`]: one agent process per work dir, and the generation of the one before.

pub mod attack_spec;
pub mod attacks;
pub mod augment;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod data;
pub mod distill;
pub mod eval;
pub mod graph;
pub mod host_memory;
pub mod host_tensor;
pub mod model;
mod native;
pub mod precision;
pub mod random;
pub mod tch_backend;
pub mod train;
pub mod transfer;
pub mod work_dir;
pub mod worker;
