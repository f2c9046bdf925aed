//! The beard-rs coordinator: expands sweeps into tasks, keeps them durable, leases them to agents
//! over gRPC and turns result shards into BEARD reports.
//!
//! # Layout
//!
//! - [`sweep`]: the sweep.yaml schema, strict parsing with file:line:column errors, grid expansion.
//! - [`metrics`]: RR / AE / CREI as pure functions.
//! - [`report`]: result shards -> leaderboards and tables (Markdown, JSON, CSV).
//! - [`import`]: BEARD's reference evaluation logs -> the same leaderboards and tables.
//! - [`store`]: durable state in SQLite (sweeps, tasks, leases, attempts, results).
//! - [`blobs`]: content-addressed files beside it (checkpoints, distilled sets), streamed or not.
//! - [`scheduler`]: the one writer of state: leasing, dependencies, expiry, retries.
//! - [`service`]: the tonic services for agents and the CLI, and [`service::run`].
//! - [`telemetry`]: operational counters, the Prometheus endpoint and the gRPC health port.
//! - [`cli`]: the `coordinator` command line.

pub mod blobs;
pub mod cli;
pub mod import;
pub mod metrics;
pub mod report;
pub mod scheduler;
pub mod service;
pub mod store;
pub mod sweep;
pub mod telemetry;
