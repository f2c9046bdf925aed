//! The `coordinator` binary; see [`beard_coordinator::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match beard_coordinator::cli::main().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", beard_proto::process::error_chain(error.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}
