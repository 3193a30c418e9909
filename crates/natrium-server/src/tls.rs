//! TLS for client connections.
//!
//! Why in the server and not in a proxy in front of it: NATS negotiates TLS inside its own
//! protocol. By default the server first sends INFO in the clear, saying `tls_required`,
//! and the client then starts the TLS handshake on the same socket; with
//! `handshake_first` the client starts TLS before any NATS byte and INFO comes encrypted.
//! A TLS-terminating proxy can do neither, so the server does it, as nats-server does.
//!
//! What is here:
//! - [`TlsOptions`]: the `tls {}` block and the `--tls*` flags as plain data, so
//!   [`crate::options::Options`] stays comparable and cloneable across reloads.
//! - [`ServerTls`]: the rustls configuration built from them (certificate chain, key,
//!   and a client-certificate verifier when `verify` is on). Built when the options are
//!   validated (so `-t` and a reload report a bad file) and again when they are applied.
//! - [`ServerTls::accept`]: the handshake, bounded by `timeout`.
//! - [`TlsInfo`]: what `/connz` reports about a connection's session.
//!
//! The crypto provider is ring, chosen explicitly for every configuration, so it does not
//! matter which providers other crates in the same build switch on.

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// nats-server's default TLS handshake timeout (`TLS_TIMEOUT`).
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a `handshake_first: auto` server waits for a TLS-first client before it
/// sends INFO in the clear (nats-server's `DEFAULT_TLS_HANDSHAKE_FIRST_FALLBACK_DELAY`).
pub const DEFAULT_FIRST_FALLBACK: Duration = Duration::from_millis(50);
/// The first byte of a TLS record carrying a handshake (a ClientHello).
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// The lowest TLS version a server accepts (`min_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 (the default, as nats-server).
    V1_2,
    /// TLS 1.3.
    V1_3,
}

/// The client-facing TLS settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsOptions {
    /// PEM file with the server's certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM file with the CAs client certificates are checked against.
    pub ca_file: Option<PathBuf>,
    /// Require and verify a client certificate (`verify`, `--tlsverify`).
    pub verify: bool,
    /// `verify_and_map`: also log the client in as the configured user its certificate
    /// names (see [`crate::tls_identity`]); implies `verify`.
    pub map: bool,
    /// Time allowed for the handshake. Also raises the default auth timeout to this plus
    /// one second, as nats-server does, so a slow handshake does not eat the login time.
    pub timeout: Duration,
    /// Do the handshake before INFO (`handshake_first`), for clients that start TLS at
    /// once (nats.go's `TLSHandshakeFirst`, `tls_handshake_first` in nats-py).
    pub handshake_first: bool,
    /// With `handshake_first`: a client that sends nothing for this long gets INFO in the
    /// clear instead (`handshake_first: auto` or a duration), so both kinds of client can
    /// connect.
    pub first_fallback: Option<Duration>,
    /// Lowest accepted version; TLS 1.2 when unset.
    pub min_version: Option<TlsVersion>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            cert_file: None,
            key_file: None,
            ca_file: None,
            verify: false,
            map: false,
            timeout: DEFAULT_TLS_TIMEOUT,
            handshake_first: false,
            first_fallback: None,
            min_version: None,
        }
    }
}

/// A TLS configuration that cannot be used. The texts follow nats-server's where it has
/// one for the same mistake.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A key without a certificate.
    #[error("missing 'cert_file' in TLS configuration")]
    MissingCert,
    /// A certificate without a key.
    #[error("missing 'key_file' in TLS configuration")]
    MissingKey,
    /// A file could not be read.
    #[error("error parsing X509 certificate/key pair: open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("error parsing X509 certificate/key pair: {}: {detail}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A certificate file holds no certificate.
    #[error("error parsing X509 certificate/key pair: no certificate found in {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The CA file holds nothing usable.
    #[error("failed to parse root ca certificate {}: {detail}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// `verify` without `ca_file`: nats-server then checks client certificates against the
    /// system's roots, which natrium does not load; refused rather than guessed.
    #[error("TLS 'verify' needs a 'ca_file' with the CAs that sign client certificates")]
    VerifyWithoutCa,
    /// rustls refused the certificate and key (e.g. a key that does not match).
    #[error("error parsing X509 certificate/key pair: {0}")]
    KeyPair(rustls::Error),
    /// The client verifier could not be built.
    #[error("error setting up TLS client verification: {0}")]
    Verifier(String),
}

/// Why a handshake failed (logged as nats-server's `TLS handshake error: ...`).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client did not finish within the TLS timeout.
    #[error("timeout")]
    Timeout,
    /// The socket failed or the peer's TLS was refused.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A built server-side TLS configuration.
pub struct ServerTls {
    /// The settings it was built from.
    pub opts: TlsOptions,
    /// The rustls acceptor (shares one `ServerConfig`).
    acceptor: TlsAcceptor,
    /// The same certificate for HTTPS monitoring, which never asks for a client
    /// certificate (as nats-server).
    https: TlsAcceptor,
    /// When the server's certificate expires (`/varz tls_cert_not_after`).
    pub not_after: Option<std::time::SystemTime>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

fn pem_error(path: &Path, e: pem::Error) -> TlsError {
    match e {
        pem::Error::Io(source) => TlsError::Open {
            path: path.to_path_buf(),
            source,
        },
        other => TlsError::Pem {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

impl ServerTls {
    /// Reads the files and builds the configuration.
    pub fn build(o: &TlsOptions) -> Result<ServerTls, TlsError> {
        let (cert_file, key_file) = match (&o.cert_file, &o.key_file) {
            (Some(c), Some(k)) => (c, k),
            (None, _) => return Err(TlsError::MissingCert),
            (Some(_), None) => return Err(TlsError::MissingKey),
        };
        let chain = read_certs(cert_file)?;
        let not_after = leaf_not_after(&chain[0]);
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| pem_error(key_file, e))?;
        // Prefer AES-128-GCM, as Go's TLS does on hardware with AES support (rustls'
        // own default puts AES-256 first), and choose by the server's order, as Go does.
        let mut provider = rustls::crypto::ring::default_provider();
        provider
            .cipher_suites
            .sort_by_key(|s| !format!("{:?}", s.suite()).contains("AES_128_GCM"));
        let provider = Arc::new(provider);
        let versions: &[&'static rustls::SupportedProtocolVersion] = match o.min_version {
            Some(TlsVersion::V1_3) => &[&rustls::version::TLS13],
            _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(TlsError::KeyPair)?;
        let https = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(TlsError::KeyPair)?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(TlsError::KeyPair)?;
        let builder = if o.verify {
            let ca = o.ca_file.as_ref().ok_or(TlsError::VerifyWithoutCa)?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca).map_err(|e| TlsError::CaFile {
                path: ca.clone(),
                detail: e.to_string(),
            })? {
                roots.add(cert).map_err(|e| TlsError::CaFile {
                    path: ca.clone(),
                    detail: e.to_string(),
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            if let Some(ca) = &o.ca_file {
                // Not used without `verify`, but a broken file is still a broken config.
                read_certs(ca).map_err(|e| TlsError::CaFile {
                    path: ca.clone(),
                    detail: e.to_string(),
                })?;
            }
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(TlsError::KeyPair)?;
        config.ignore_client_order = true;
        Ok(ServerTls {
            opts: o.clone(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
            https: TlsAcceptor::from(Arc::new(https)),
            not_after,
        })
    }

    /// Runs the server side of the handshake on `stream`, to be done by `deadline` (the
    /// TLS timeout after the connection's first wait for the client).
    pub async fn accept(
        &self,
        stream: TcpStream,
        deadline: tokio::time::Instant,
    ) -> Result<TlsStream<TcpStream>, HandshakeError> {
        handshake(&self.acceptor, stream, deadline).await
    }
}

impl ServerTls {
    /// The handshake of an HTTPS monitoring connection, bounded by the TLS timeout.
    pub async fn accept_https(
        &self,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, HandshakeError> {
        let deadline = tokio::time::Instant::now() + self.opts.timeout;
        handshake(&self.https, stream, deadline).await
    }
}

/// The server side of a handshake with `acceptor`, to be done by `deadline`.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    deadline: tokio::time::Instant,
) -> Result<TlsStream<TcpStream>, HandshakeError> {
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(HandshakeError::Io(e)),
        Err(_) => Err(HandshakeError::Timeout),
    }
}

/// The expiry of a DER certificate, if it parses.
fn leaf_not_after(der: &[u8]) -> Option<std::time::SystemTime> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let secs = u64::try_from(cert.validity().not_after.timestamp()).ok()?;
    std::time::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// What `/connz` shows about a TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `tls_version`: `1.2` or `1.3`.
    pub version: &'static str,
    /// `tls_cipher_suite`, in Go's spelling (`TLS_AES_128_GCM_SHA256`).
    pub cipher_suite: String,
    /// `tls_first`: the handshake came before INFO.
    pub first: bool,
    /// The certificates the client presented, leaf first (`tls_peer_certs`, and the
    /// identity `verify_and_map` maps).
    pub peer_certs: Arc<Vec<crate::tls_identity::PeerCert>>,
}

impl TlsInfo {
    /// Reads the negotiated session of `conn`.
    pub fn of(conn: &rustls::ServerConnection, first: bool) -> TlsInfo {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
            _ => "unknown",
        };
        let cipher_suite = conn
            .negotiated_cipher_suite()
            .map(|s| go_cipher_name(s.suite()))
            .unwrap_or_default();
        let peer_certs = conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .filter_map(|c| crate::tls_identity::PeerCert::parse(c))
            .collect();
        TlsInfo {
            version,
            cipher_suite,
            first,
            peer_certs: Arc::new(peer_certs),
        }
    }
}

/// Go's name for a cipher suite: rustls spells the TLS 1.3 ones `TLS13_…`, Go `TLS_…`;
/// the TLS 1.2 names are the same in both.
fn go_cipher_name(suite: rustls::CipherSuite) -> String {
    match suite.as_str() {
        Some(name) => match name.strip_prefix("TLS13_") {
            Some(rest) => format!("TLS_{rest}"),
            None => name.to_string(),
        },
        None => format!("0x{:04X}", u16::from(suite)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/tls")
            .join(name)
    }

    fn opts() -> TlsOptions {
        TlsOptions {
            cert_file: Some(data("server-cert.pem")),
            key_file: Some(data("server-key.pem")),
            ..TlsOptions::default()
        }
    }

    #[test]
    fn builds_from_the_test_certificates() {
        ServerTls::build(&opts()).unwrap();
        let verify = TlsOptions {
            verify: true,
            ca_file: Some(data("ca.pem")),
            min_version: Some(TlsVersion::V1_3),
            ..opts()
        };
        ServerTls::build(&verify).unwrap();
    }

    #[test]
    fn bad_configurations_say_what_is_wrong() {
        let no_key = TlsOptions {
            key_file: None,
            ..opts()
        };
        assert!(matches!(
            ServerTls::build(&no_key),
            Err(TlsError::MissingKey)
        ));
        let no_cert = TlsOptions {
            cert_file: None,
            ..opts()
        };
        assert!(matches!(
            ServerTls::build(&no_cert),
            Err(TlsError::MissingCert)
        ));
        let missing = TlsOptions {
            cert_file: Some(data("nope.pem")),
            ..opts()
        };
        let e = ServerTls::build(&missing).unwrap_err();
        assert!(matches!(e, TlsError::Open { .. }), "{e}");
        assert!(e.to_string().contains("nope.pem"), "{e}");
        // A key file given as the certificate: no certificate in it.
        let swapped = TlsOptions {
            cert_file: Some(data("server-key.pem")),
            ..opts()
        };
        assert!(matches!(
            ServerTls::build(&swapped),
            Err(TlsError::NoCertificate { .. })
        ));
        // The client's key with the server's certificate: rustls refuses the pair.
        let mismatched = TlsOptions {
            key_file: Some(data("client-key.pem")),
            ..opts()
        };
        assert!(matches!(
            ServerTls::build(&mismatched),
            Err(TlsError::KeyPair(_))
        ));
        let verify_no_ca = TlsOptions {
            verify: true,
            ..opts()
        };
        assert!(matches!(
            ServerTls::build(&verify_no_ca),
            Err(TlsError::VerifyWithoutCa)
        ));
        let bad_ca = TlsOptions {
            verify: true,
            ca_file: Some(data("server-key.pem")),
            ..opts()
        };
        assert!(matches!(
            ServerTls::build(&bad_ca),
            Err(TlsError::CaFile { .. })
        ));
    }

    #[test]
    fn cipher_names_are_go_s() {
        assert_eq!(
            go_cipher_name(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            go_cipher_name(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        );
    }
}
