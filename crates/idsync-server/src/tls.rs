//! HTTPS for the service when the admin gives a certificate and key (`--tls-cert`, `--tls-key`,
//! PEM files): rustls, the one TLS stack of the build (the same provider as the HTTP clients).
//! Without them the service speaks plain HTTP, meant for loopback or a TLS-terminating proxy.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain (PEM), the server's certificate first.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// How long a client may take to finish the TLS handshake: a connection that never does must
/// not hold a task for ever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the files and makes the acceptor; errors name the file and what is wrong with it.
pub fn acceptor(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        anyhow::anyhow!(
            "cannot read a private key from {} ({e}): give a PEM file with one PKCS#8, PKCS#1 or SEC1 key",
            files.key.display()
        )
    })?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the key in {} does not go with the certificate in {}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read certificates from {} ({e}): give a PEM file with the server's certificate first, then its chain",
                path.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "{} holds no certificate: give a PEM file with the server's certificate first, then its chain",
            path.display()
        );
    }
    Ok(certs)
}

/// How long to wait after a failed accept before the next.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Serves `router` over TLS until `stop` turns true; connections already open finish on their
/// own.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Passing (out of file handles, a connection reset before it was taken):
                // the API must not end for it. A pause keeps a lasting error from spinning.
                tracing::warn!(error = %e, "accepting a connection failed; trying again");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
