//! Optional TLS (rustls) on the gRPC transport: the command-line options of both ends and the
//! tonic configurations built from their PEM files.
//!
//! - Server ([`ServerTlsArgs`]): `--tls-cert` and `--tls-key` turn TLS on; `--tls-client-ca`
//!   additionally requires every client to present a certificate signed by that CA.
//! - Clients ([`ClientTlsArgs`], [`endpoint`]): an `https://` address speaks TLS, trusting the CA
//!   in `--tls-ca` (else the Mozilla roots); `--tls-cert` and `--tls-key` present a client
//!   certificate. TLS options with an `http://` address are an error rather than silently unused.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Errors turning TLS options into a configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {option} {path}: {source}")]
    Read { option: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{option} {path} holds no PEM {expected}")]
    NotPem { option: &'static str, path: PathBuf, expected: &'static str },
    #[error("invalid coordinator address {url:?}: {source}")]
    Url { url: String, source: tonic::transport::Error },
    #[error("TLS options need an https:// coordinator address, not {url:?}")]
    PlainUrl { url: String },
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] tonic::transport::Error),
}

/// Server-side TLS options of `coordinator serve`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServerTlsArgs {
    /// PEM certificate chain of the server; with --tls-key, clients must connect with https://.
    #[arg(long, value_name = "FILE", env = "BEARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the server certificate.
    #[arg(long, value_name = "FILE", env = "BEARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate: clients must present a certificate it signed.
    #[arg(long, value_name = "FILE", env = "BEARD_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl ServerTlsArgs {
    /// The server configuration, or `None` when TLS is off.
    pub fn config(&self) -> Result<Option<ServerTlsConfig>, TlsError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else { return Ok(None) };
        let identity = identity(cert, key)?;
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.tls_client_ca {
            config = config.client_ca_root(certificate("--tls-client-ca", ca)?).client_auth_optional(false);
        }
        Ok(Some(config))
    }
}

/// Client-side TLS options of the agent and the CLI.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClientTlsArgs {
    /// PEM CA certificate that signed the coordinator's certificate (an https:// coordinator);
    /// the Mozilla roots when omitted.
    #[arg(long, value_name = "FILE", env = "BEARD_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, for a coordinator that requires one (with --tls-key).
    #[arg(long, value_name = "FILE", env = "BEARD_TLS_CLIENT_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(long, value_name = "FILE", env = "BEARD_TLS_CLIENT_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    fn is_empty(&self) -> bool {
        self.tls_ca.is_none() && self.tls_cert.is_none() && self.tls_key.is_none()
    }

    fn config(&self) -> Result<ClientTlsConfig, TlsError> {
        let mut config = ClientTlsConfig::new();
        config = match &self.tls_ca {
            Some(ca) => config.ca_certificate(certificate("--tls-ca", ca)?),
            None => config.with_webpki_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config = config.identity(identity(cert, key)?);
        }
        Ok(config)
    }
}

/// The endpoint of a coordinator at `url`, with TLS when the address is `https://`.
pub fn endpoint(url: &str, tls: &ClientTlsArgs) -> Result<Endpoint, TlsError> {
    let endpoint =
        Endpoint::from_shared(url.to_owned()).map_err(|source| TlsError::Url { url: url.to_owned(), source })?;
    if endpoint.uri().scheme_str() == Some("https") {
        return Ok(endpoint.tls_config(tls.config()?)?);
    }
    if !tls.is_empty() {
        return Err(TlsError::PlainUrl { url: url.to_owned() });
    }
    Ok(endpoint)
}

fn identity(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let cert = read_pem("--tls-cert", cert, "CERTIFICATE", "certificate")?;
    let key = read_pem("--tls-key", key, "PRIVATE KEY", "private key")?;
    Ok(Identity::from_pem(cert, key))
}

fn certificate(option: &'static str, path: &Path) -> Result<Certificate, TlsError> {
    Ok(Certificate::from_pem(read_pem(option, path, "CERTIFICATE", "certificate")?))
}

/// The file's bytes, checked to contain a PEM block whose label ends in `label` (so a key file
/// passed as a certificate fails here, naming the option, rather than deep in the handshake).
fn read_pem(option: &'static str, path: &Path, label: &str, expected: &'static str) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { option, path: path.to_owned(), source })?;
    let text = String::from_utf8_lossy(&bytes);
    let has_block = text.lines().any(|line| {
        line.strip_prefix("-----BEGIN ").and_then(|rest| rest.strip_suffix("-----")).is_some_and(|l| l.ends_with(label))
    });
    if !has_block {
        return Err(TlsError::NotPem { option, path: path.to_owned(), expected });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_refuse_tls_options_and_https_needs_readable_pem() {
        let none = ClientTlsArgs::default();
        assert!(endpoint("http://127.0.0.1:1", &none).is_ok());
        let dir = tempfile::tempdir().expect("dir");
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").expect("write");
        let with_ca = ClientTlsArgs { tls_ca: Some(not_pem.clone()), ..Default::default() };
        let error = endpoint("http://127.0.0.1:1", &with_ca).expect_err("plain url");
        assert!(matches!(error, TlsError::PlainUrl { .. }), "{error}");
        let error = endpoint("https://127.0.0.1:1", &with_ca).expect_err("not pem");
        assert!(error.to_string().contains("--tls-ca") && error.to_string().contains("no PEM certificate"), "{error}");
        let missing = ClientTlsArgs { tls_ca: Some(dir.path().join("absent.pem")), ..Default::default() };
        assert!(matches!(endpoint("https://127.0.0.1:1", &missing), Err(TlsError::Read { .. })));
        assert!(endpoint("https://127.0.0.1:1", &none).is_ok());
        let server = ServerTlsArgs { tls_cert: Some(not_pem.clone()), tls_key: Some(not_pem), tls_client_ca: None };
        assert!(matches!(server.config(), Err(TlsError::NotPem { option: "--tls-cert", .. })));
        assert!(ServerTlsArgs::default().config().expect("off").is_none());
    }
}
