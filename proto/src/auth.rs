//! Bearer-token authentication shared by the coordinator, the agents and the CLI.
//!
//! Every call to the agent and control services carries `authorization: Bearer <token>`; the
//! server compares it in constant time and answers `UNAUTHENTICATED` otherwise. The token comes
//! from a file (`--token-file`) or the environment (`BEARD_TOKEN`); a coordinator started
//! without one generates a random token into its state directory (mode 0600).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

const HEADER: &str = "authorization";

/// Errors reading or writing a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write the token file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the token {origin} is empty or not printable ASCII")]
    Malformed { origin: String },
}

/// A shared secret. Its `Debug` output never shows the value.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from text, trimmed; printable ASCII without spaces only.
    pub fn parse(text: &str, origin: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Malformed { origin: origin.to_owned() });
        }
        Ok(Self(text.into()))
    }

    /// The token in `file` if given, else in the `BEARD_TOKEN` environment variable.
    pub fn from_file_or_env(file: Option<&Path>) -> Result<Option<Self>, TokenError> {
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|source| TokenError::Read { path: path.to_owned(), source })?;
            return Self::parse(&text, &format!("in {}", path.display())).map(Some);
        }
        match std::env::var("BEARD_TOKEN") {
            Ok(text) => Self::parse(&text, "in BEARD_TOKEN").map(Some),
            Err(_) => Ok(None),
        }
    }

    /// A fresh random token (256 bits from the OS generator, via two v4 UUIDs).
    pub fn generate() -> Self {
        let text = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        Self(text.into())
    }

    /// Write the token to `path`, readable by its owner only.
    pub fn write_private(&self, path: &Path) -> Result<(), TokenError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let write = |source| TokenError::Write { path: path.to_owned(), source };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(write)?;
        file.write_all(self.0.as_bytes()).map_err(write)
    }

    /// Constant-time comparison with a presented secret.
    fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.0.as_bytes().ct_eq(presented))
    }
}

/// Client side: attaches the token to every call.
#[derive(Clone)]
pub struct AttachToken(Option<MetadataValue<Ascii>>);

impl AttachToken {
    pub fn new(token: Option<&Token>) -> Self {
        Self(token.and_then(|token| format!("Bearer {}", token.0).parse().ok()))
    }
}

impl Interceptor for AttachToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert(HEADER, value.clone());
        }
        Ok(request)
    }
}

/// Server side: refuses calls without the right token.
#[derive(Clone)]
pub struct RequireToken(Token);

impl RequireToken {
    pub fn new(token: Token) -> Self {
        Self(token)
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let presented = request
            .metadata()
            .get(HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match presented {
            Some(secret) if self.0.matches(secret.as_bytes()) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong bearer token")),
            None => Err(Status::unauthenticated("missing bearer token (use --token-file or BEARD_TOKEN)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = value {
            request.metadata_mut().insert(HEADER, value.parse().expect("ascii"));
        }
        request
    }

    #[test]
    fn only_the_right_token_passes() {
        let token = Token::parse("s3cret", "test").expect("token");
        let mut guard = RequireToken::new(token.clone());
        assert!(guard.call(with_header(Some("Bearer s3cret"))).is_ok());
        for bad in [None, Some("Bearer s3cre"), Some("Bearer s3cret2"), Some("s3cret"), Some("Basic s3cret")] {
            let status = guard.call(with_header(bad)).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad:?}");
        }
        let attached = AttachToken::new(Some(&token)).call(Request::new(())).expect("attach");
        assert!(guard.call(attached).is_ok());
    }

    #[test]
    fn tokens_are_trimmed_validated_and_redacted() {
        assert!(Token::parse("  abc\n", "test").is_ok());
        assert!(Token::parse("a b", "test").is_err());
        assert!(Token::parse("\n", "test").is_err());
        assert_eq!(format!("{:?}", Token::generate()), "Token(<redacted>)");
        assert_eq!(Token::generate().0.len(), 64);
    }
}
