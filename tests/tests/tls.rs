//! TLS end to end with real processes: a CA, a server certificate and client certificates
//! generated at test time; `coordinator serve` requiring client certificates; an agent and the
//! `coordinator submit --wait` CLI finishing a sweep over `https://`; and the clients that must
//! be refused (plaintext, no client certificate, a client certificate from another CA, a server
//! certificate the client does not trust).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use beard_proto::tls::ClientTlsArgs;
use beard_proto::v1::StatusRequest;
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

const SWEEP: &str = "name: tls\ndatasets:\n  synthetic: {}\nmethods:\n  random: random\nipc: [1]\n\
                     attacks:\n  fgsm: {}\ntargeted: [false]\nseeds: 1\n\
                     training: { optimizer: adam, lr: 0.001, epochs: 1, batch_size: 64, weight_decay: 0, lr_schedule: constant, aug: none }\n\
                     model: { width: 16 }\nevaluation: { test_samples: 64, batch_size: 64 }\n";

/// PEM files of a test PKI.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// A client certificate signed by a CA the server does not know.
    rogue_cert: PathBuf,
    rogue_key: PathBuf,
}

fn authority(name: &str) -> anyhow::Result<CertifiedIssuer<'static, KeyPair>> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}

/// A leaf certificate for `names`, signed by `issuer`, written as `<stem>.pem` and `<stem>.key`.
fn leaf(
    dir: &Path,
    stem: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &CertifiedIssuer<'_, KeyPair>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, stem);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    let (cert_path, key_path) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}.key")));
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    Ok((cert_path, key_path))
}

fn generate(dir: &Path) -> anyhow::Result<Pki> {
    let trusted = authority("beard test CA")?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, trusted.pem())?;
    let (server_cert, server_key) =
        leaf(dir, "server", &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, &trusted)?;
    let (client_cert, client_key) = leaf(dir, "agent", &[], ExtendedKeyUsagePurpose::ClientAuth, &trusted)?;
    let (rogue_cert, rogue_key) =
        leaf(dir, "rogue", &[], ExtendedKeyUsagePurpose::ClientAuth, &authority("rogue CA")?)?;
    Ok(Pki { ca, server_cert, server_key, client_cert, client_key, rogue_cert, rogue_key })
}

fn client(ca: Option<&Path>, identity: Option<(&Path, &Path)>) -> ClientTlsArgs {
    ClientTlsArgs {
        tls_ca: ca.map(Path::to_path_buf),
        tls_cert: identity.map(|(cert, _)| cert.to_path_buf()),
        tls_key: identity.map(|(_, key)| key.to_path_buf()),
    }
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// The first byte of a TLS alert record (content type 21).
const TLS_ALERT_RECORD: u8 = 0x15;

/// The first bytes a server answers to HTTP/2's plaintext connection preface.
async fn plaintext_reply(address: &str) -> anyhow::Result<Vec<u8>> {
    let mut tcp = tokio::net::TcpStream::connect(address).await?;
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
    let mut reply = vec![0; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut reply)).await??;
    reply.truncate(read);
    Ok(reply)
}

/// The error a TLS client (trusting `ca`, presenting `identity` or no certificate) gets when it
/// reads after its handshake: how the server refused it.
async fn server_alert(address: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> anyhow::Result<String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};

    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca)? {
        roots.add(certificate?)?;
    }
    let builder = ClientConfig::builder_with_provider(std::sync::Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key)?)?
        }
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let mut tls = connector.connect(ServerName::try_from("localhost")?, tcp).await?;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
    let mut byte = [0; 1];
    match tokio::time::timeout(Duration::from_secs(10), tls.read(&mut byte)).await? {
        Err(error) => Ok(error.to_string()),
        Ok(read) => anyhow::bail!("the server accepted the client ({read} bytes answered)"),
    }
}

/// Connect and make one status call: what a refused client never gets past.
async fn status_call(url: &str, coordinator: &Coordinator, tls: &ClientTlsArgs) -> anyhow::Result<()> {
    let mut control = control_tls(url, Some(&coordinator.token()?), tls).await?;
    control.status(StatusRequest::default()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_runs_over_tls_with_client_certificates_and_other_clients_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = generate(dir.path())?;
    let serve_tls = [
        "--tls-cert".to_owned(),
        arg(&pki.server_cert),
        "--tls-key".to_owned(),
        arg(&pki.server_key),
        "--tls-client-ca".to_owned(),
        arg(&pki.ca),
    ];
    let coordinator = start_coordinator_with(dir.path(), 10.0, &serve_tls)?;
    let https = coordinator.url.replacen("http://", "https://", 1);
    let client_tls = client(Some(&pki.ca), Some((&pki.client_cert, &pki.client_key)));

    // Refused, each for its own reason: plaintext (the server answers with a TLS alert record),
    // no client certificate and one from another CA (the server's handshake alerts, read by a raw
    // TLS client, since a gRPC client may see only the closed connection), and a server
    // certificate the client does not trust (the Mozilla roots only).
    let address = coordinator.url.trim_start_matches("http://").to_owned();
    let reply = plaintext_reply(&address).await?;
    assert_eq!(reply.first(), Some(&TLS_ALERT_RECORD), "plaintext gets a TLS alert record: {reply:02x?}");
    let alert = server_alert(&address, &pki.ca, None).await?;
    assert!(alert.contains("received fatal alert: CertificateRequired"), "no client certificate: {alert}");
    let alert = server_alert(&address, &pki.ca, Some((&pki.rogue_cert, &pki.rogue_key))).await?;
    assert!(alert.contains("received fatal alert: UnknownCA"), "rogue client certificate: {alert}");
    let untrusted = client(None, Some((&pki.client_cert, &pki.client_key)));
    let error = status_call(&https, &coordinator, &untrusted).await.expect_err("an untrusted server is refused");
    let chain = beard_proto::process::error_chain(error.as_ref());
    assert!(chain.ends_with("invalid peer certificate: UnknownIssuer"), "untrusted server: {chain}");
    // The same clients through tonic: none gets through.
    for (what, url, tls) in [
        ("plaintext", coordinator.url.clone(), ClientTlsArgs::default()),
        ("no client certificate", https.clone(), client(Some(&pki.ca), None)),
        ("rogue client certificate", https.clone(), client(Some(&pki.ca), Some((&pki.rogue_cert, &pki.rogue_key)))),
    ] {
        let result = tokio::time::timeout(Duration::from_secs(20), status_call(&url, &coordinator, &tls)).await?;
        assert!(result.is_err(), "{what}: the call went through");
    }
    status_call(&https, &coordinator, &client_tls).await?;

    // The real agent and the real CLI over TLS.
    let agent_tls =
        ["--tls-ca", &arg(&pki.ca), "--tls-cert", &arg(&pki.client_cert), "--tls-key", &arg(&pki.client_key)]
            .map(str::to_owned);
    let _agent = start_agent_with(dir.path(), &coordinator, &https, "tls-agent", &agent_tls)?;
    let sweep_file = dir.path().join("sweep.yaml");
    std::fs::write(&sweep_file, SWEEP)?;
    let output = dir.path().join("submit.out");
    let child = Command::new(binary("coordinator"))
        .arg("submit")
        .arg(&sweep_file)
        .args(["--wait", "--coordinator", &https, "--token-file", &arg(&coordinator.token_file())])
        .args(&agent_tls)
        .stdout(std::fs::File::create(&output)?)
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut submit = Process { child, name: "submit".into() };
    let exit = submit.wait_exit(Duration::from_secs(300))?.expect("submit --wait finished within 5 minutes");
    let printed = std::fs::read_to_string(&output)?;
    assert!(exit.success(), "submit --wait failed: {printed}");
    assert!(printed.contains("1 train tasks, 1 attack tasks"), "{printed}");

    let mut control = control_tls(&https, Some(&coordinator.token()?), &client_tls).await?;
    let sweeps = control.status(StatusRequest::default()).await?.into_inner().sweeps;
    assert_eq!(sweeps.len(), 1);
    let (total, done, failed) = (sweeps[0].total, sweeps[0].done, sweeps[0].failed);
    assert_eq!((total, done, failed), (2, 2, 0), "{:?}", sweeps[0]);
    let conn = open_state(&coordinator.state)?;
    assert_eq!(result_accounting(&conn, &sweeps[0].sweep_id)?, (2, 2, 0));

    // The CLI without its client certificate is refused too, with a non-zero exit.
    let status = Command::new(binary("coordinator"))
        .args(["status", "--coordinator", &https, "--token-file", &arg(&coordinator.token_file())])
        .args(["--tls-ca", &arg(&pki.ca)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    assert!(!status.success(), "status without a client certificate succeeded");
    Ok(())
}
