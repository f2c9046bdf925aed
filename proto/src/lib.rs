//! The wire protocol of beard-rs and the domain types both sides share.
//!
//! # Layout
//!
//! - [`v1`]: the generated prost/tonic types of `proto/beard/v1/beard.proto` — task specs, results,
//!   the agent service and the control service.
//! - [`auth`]: the bearer token, and the interceptors that attach and check it.
//! - [`blob`]: files in transit as chunk streams, cut up and put back together with checks.
//! - [`keys`]: content keys of tasks (SHA-256 of the canonical prost encoding).
//! - [`describe`]: short human-readable descriptions of specs for logs, status and dry runs.
//! - [`distillation`]: facts of the distillation methods' reference commands.
//! - [`evaluation`]: the evaluation modes' names and the reference code's attack settings that
//!   the `beard-compat` mode reproduces.
//! - [`failure`]: the typed task failure that crosses the wire, with its retry classification.
//! - [`process`]: logging setup, the shutdown signal and error chains as both binaries print them.
//! - [`tls`]: optional TLS (rustls) options of the server and the clients.
//!
//! Task specs are prost messages and double as domain types: proto3 without maps encodes
//! deterministically, so the encoding is a canonical form to hash.

pub mod auth;
pub mod blob;
pub mod describe;
pub mod distillation;
pub mod evaluation;
pub mod failure;
pub mod keys;
pub mod process;
pub mod tls;

/// Generated types of the `beard.v1` package.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("beard.v1");
}

/// Bumped on every incompatible change of the agent protocol; agents with another version are
/// refused at registration.
pub const PROTOCOL_VERSION: u32 = 3;

/// Largest gRPC message either side accepts (checkpoints and shards travel inline).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
