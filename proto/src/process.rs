//! Process plumbing both binaries share: the log format flag, logging setup, the shutdown
//! signal, and an error's chain of causes as a person reads it.

/// How logs are written (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Install the global `tracing` subscriber: human-readable or JSON lines on stderr, filtered by
/// `RUST_LOG` (default `info`).
pub fn init_tracing(format: LogFormat) {
    let json = format == LogFormat::Json;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

/// An error and its causes on one line, each said once. Many errors put their cause into their
/// own message and also return it as their `source()` (so do tonic's transport errors, layer upon
/// layer); walking the chain naively prints such a cause twice. Here a cause that the text
/// before it already says is left out, and a message that repeats the one before it and adds to
/// it replaces it.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let message = error.to_string();
        match parts.last_mut() {
            Some(last) if last.contains(&message) => {}
            Some(last) if message.starts_with(last.as_str()) => *last = message,
            _ => parts.push(message),
        }
        next = error.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct Wrapping {
        path: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Layer {
        message: &'static str,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    }

    fn layer(message: &'static str, source: Option<Box<dyn std::error::Error + Send + Sync>>) -> Layer {
        Layer { message, source }
    }

    #[test]
    fn a_cause_the_message_already_says_is_printed_once() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let error = anyhow::Error::new(Wrapping { path: "/data/test.bin", source: missing }).context("cannot load");
        assert_eq!(error_chain(error.as_ref()), "cannot load: /data/test.bin: entity not found");
    }

    #[test]
    fn repeated_layers_collapse_and_new_causes_stay() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let inner = layer("tcp connect error", Some(Box::new(refused)));
        let middle = layer("tcp connect error", Some(Box::new(inner)));
        let outer = layer("transport error", Some(Box::new(middle)));
        let error = anyhow::Error::new(outer).context("cannot reach the coordinator at http://127.0.0.1:9");
        assert_eq!(
            error_chain(error.as_ref()),
            "cannot reach the coordinator at http://127.0.0.1:9: transport error: tcp connect error: connection refused"
        );
    }

    #[test]
    fn a_message_that_extends_the_one_before_replaces_it() {
        let detailed = layer("tcp connect error: connection refused", None);
        let error = layer("tcp connect error", Some(Box::new(detailed)));
        assert_eq!(error_chain(&error), "tcp connect error: connection refused");
    }
}
