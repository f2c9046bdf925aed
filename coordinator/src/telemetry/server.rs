//! The operations port (`coordinator serve --metrics-listen`): `GET /metrics` for Prometheus and
//! the standard gRPC health service, plaintext HTTP/1.1 and h2c. It is separate from the agent
//! port, which may require TLS and always requires the token, so scrapers and Kubernetes' native
//! gRPC probes need neither; it serves counts and health, never task data.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tonic::service::Routes;

use super::Scrape;
use super::exposition::CONTENT_TYPE;

/// Serve `/metrics` from `scrape` and the gRPC services in `grpc` (the health service) on
/// `listener` until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, scrape: Scrape, grpc: Routes) -> std::io::Result<()> {
    let router = grpc.into_axum_router().fallback(|| async { StatusCode::NOT_FOUND }).route(
        "/metrics",
        get(move || {
            let scrape = scrape.clone();
            async move {
                match scrape.render().await {
                    Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
                    Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response(),
                }
            }
        }),
    );
    axum::serve(listener, router).await
}
