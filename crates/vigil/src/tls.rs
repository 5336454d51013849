//! TLS for `vigil serve`: rustls on the listening port, HTTP/1.1 only.
//!
//! ALPN offers `http/1.1` alone: a libcurl producer offered `h2` would switch to HTTP/2, where
//! the hop-by-hop headers it signs (`connection`, `transfer-encoding`) cannot be sent, and
//! every PutMedia would fail its signature check (`../shared/spec/kvs-api.md` §8).
//!
//! `--tls-self-signed` makes a home network's TLS work without a public CA: on first start it
//! creates a local certificate authority (`DATA_DIR/tls/ca.pem`, mode 0644, key `ca.key`, mode 0600) and
//! a server certificate signed by it for the host's names and addresses (`server.pem`,
//! `server.key`). Producers trust `ca.pem` (docs/tls.md). The server certificate is issued
//! again when the set of names changes or it is within 30 days of expiry; the CA stays.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Builds the rustls configuration from PEM files: a certificate chain and its private key.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the TLS certificate {}", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no PEM certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not form a usable pair")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Files of the self-signed setup.
#[derive(Debug)]
pub struct SelfSigned {
    /// The CA certificate producers trust.
    pub ca_cert: PathBuf,
    /// The server certificate (chain: server, CA).
    pub cert: PathBuf,
    /// The server key.
    pub key: PathBuf,
    /// Whether the server certificate was (re)issued now.
    pub issued: bool,
    /// The names and addresses it covers.
    pub names: Vec<String>,
}

const CA_NAME: &str = "Vigil local CA";

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "Vigil");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(10 * 365);
    Ok(p)
}

/// Writes a private file (mode 0600: keys) atomically.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    write_mode(path, data, 0o600)
}

/// Writes a public file (mode 0644: certificates, which producers running as other users
/// must read) atomically.
fn write_public(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    write_mode(path, data, 0o644)
}

fn write_mode(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    // The mode given to open() is masked by the umask; a certificate is meant to be read.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Makes (or reuses) the local CA and a server certificate for `names` under `dir`.
pub fn ensure_self_signed(dir: &Path, names: &BTreeSet<String>) -> anyhow::Result<SelfSigned> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca_cert, ca_key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (cert, key, names_file) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("server.names"),
    );
    let ca_key = if ca_key_path.exists() && ca_cert.exists() {
        let pem = std::fs::read_to_string(&ca_key_path)
            .with_context(|| format!("reading {}", ca_key_path.display()))?;
        let key = KeyPair::from_pem(&pem)
            .with_context(|| format!("parsing {}", ca_key_path.display()))?;
        // Data directories made before certificates were written 0644.
        std::fs::set_permissions(&ca_cert, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("making {} readable", ca_cert.display()))?;
        key
    } else {
        let key = KeyPair::generate().context("generating the CA key")?;
        let ca = ca_params()?.self_signed(&key).context("making the CA")?;
        write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
        write_public(&ca_cert, ca.pem().as_bytes())?;
        key
    };
    let wanted: Vec<String> = names.iter().cloned().collect();
    let current = std::fs::read_to_string(&names_file).unwrap_or_default();
    let fresh = cert.exists()
        && key.exists()
        && current.lines().map(str::to_owned).collect::<Vec<_>>() == wanted
        && !expires_soon(&names_file);
    if fresh {
        return Ok(SelfSigned {
            ca_cert,
            cert,
            key,
            issued: false,
            names: wanted,
        });
    }
    // The issuer: the same name and key as the stored CA certificate, which is all a
    // signature needs (the issued certificate chains to ca.pem).
    let issuer = ca_params()?
        .self_signed(&ca_key)
        .context("loading the CA")?;
    let mut p = CertificateParams::new(wanted.clone()).context("the server's names")?;
    p.distinguished_name = {
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            wanted.first().cloned().unwrap_or_else(|| "vigil".into()),
        );
        dn
    };
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(397);
    let server_key = KeyPair::generate().context("generating the server key")?;
    let server = p
        .signed_by(&server_key, &issuer, &ca_key)
        .context("issuing the server certificate")?;
    let ca_pem = std::fs::read_to_string(&ca_cert)
        .with_context(|| format!("reading {}", ca_cert.display()))?;
    write_private(&key, server_key.serialize_pem().as_bytes())?;
    write_public(&cert, format!("{}{}", server.pem(), ca_pem).as_bytes())?;
    write_private(&names_file, wanted.join("\n").as_bytes())?;
    Ok(SelfSigned {
        ca_cert,
        cert,
        key,
        issued: true,
        names: wanted,
    })
}

/// Whether the certificate issued with `names_file` is older than 367 days (it lasts 397).
fn expires_soon(names_file: &Path) -> bool {
    std::fs::metadata(names_file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age.as_secs() > 367 * 86_400)
}

/// The names a self-signed certificate covers: `localhost`, the loopback addresses, the host
/// name, the listen address when it is a specific one, the public URL's host, and any extra
/// names given.
pub fn default_names(
    listen: IpAddr,
    public_url: Option<&str>,
    extra: &[String],
) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    if !host.is_empty() {
        names.insert(host);
    }
    if !listen.is_unspecified() {
        names.insert(listen.to_string());
    }
    if let Some(url) = public_url
        && let Some(host) = url_host(url)
    {
        names.insert(host);
    }
    names.extend(extra.iter().cloned());
    names
}

/// The host of `scheme://host[:port][/...]`, without brackets for IPv6.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            url_host("https://nvr.home.arpa:4567").as_deref(),
            Some("nvr.home.arpa")
        );
        assert_eq!(
            url_host("https://[fd00::1]:4567/x").as_deref(),
            Some("fd00::1")
        );
        assert_eq!(url_host("http://10.0.0.2").as_deref(), Some("10.0.0.2"));
    }
}
