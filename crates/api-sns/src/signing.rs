//! The key SNS deliveries are signed with, and the certificate subscribers verify them by.
//!
//! SNS signs every HTTP/S delivery (its `Signature` member) with an RSA key and publishes the
//! key's X.509 certificate at the delivery's `SigningCertURL`: `SignatureVersion` 1 is
//! SHA1withRSA, 2 SHA256withRSA, both PKCS#1 v1.5, base64. Vigil makes an RSA-2048 key and a
//! self-signed certificate for it on first start and keeps both in the index, sealed under the
//! store's master key (`vigil_store::sealed`), so that a subscriber's pinned certificate stays
//! valid across restarts. The certificate is served at
//! `/SimpleNotificationService-ID.pem`, `ID` being the first 16 bytes of its SHA-256, hex.
//!
//! Signing: SHA256withRSA through ring (constant-time, blinded); SHA1withRSA, which ring does
//! not offer, through the `rsa` crate, whose private-key operations are blinded but not
//! constant-time (RUSTSEC-2023-0071): a topic set to `SignatureVersion` 2 uses ring alone.
//!
//! The string to sign (AWS's "Verifying the signatures of Amazon SNS messages"):
//! `Name\nValue\n` for each of, in this order, `Message`, `MessageId`, `Subject` (only when
//! present), `Timestamp`, `TopicArn`, `Type` for a notification; `Message`, `MessageId`,
//! `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type` for a (un)subscribe confirmation.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use serde::{Deserialize, Serialize};
use vigil_store::{SealedDocument, Store};

/// The document that keeps the key (kind, name).
const DOC_KIND: &str = "sns-signing";
const DOC_NAME: &str = "key";
/// The name the key is sealed under (its identity and format version).
const SEALED_NAME: &str = "sns signing key v1";

/// Why the signing key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The store failed (or the sealed key did not open under the master keys).
    #[error("the SNS signing key: {0}")]
    Store(#[from] vigil_store::StoreError),
    /// Making or reading the key or certificate failed.
    #[error("the SNS signing key: {0}")]
    Key(String),
}

#[derive(Serialize, Deserialize)]
struct Stored {
    master_key: String,
    wrapped_key: String,
    nonce: String,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Plain {
    pkcs8: String,
    cert_pem: String,
}

/// The signing key and its certificate.
pub struct Signer {
    sha1: rsa::pkcs1v15::SigningKey<sha1::Sha1>,
    sha256: ring::signature::RsaKeyPair,
    cert_pem: String,
    cert_path: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

fn key_err(e: impl std::fmt::Display) -> SignerError {
    SignerError::Key(e.to_string())
}

impl Signer {
    /// The store's key, made (and kept) on first use. Blocking: making an RSA key takes a
    /// moment.
    pub fn load_or_create(store: &Store) -> Result<Self, SignerError> {
        if let Some(body) = store.document(DOC_KIND, DOC_NAME)? {
            let s: Stored = serde_json::from_slice(&body).map_err(key_err)?;
            let nonce: [u8; 12] = B64
                .decode(&s.nonce)
                .map_err(key_err)?
                .try_into()
                .map_err(|_| key_err("a nonce that is not 12 bytes"))?;
            let doc = SealedDocument {
                master_key: s.master_key,
                wrapped_key: B64.decode(&s.wrapped_key).map_err(key_err)?,
                nonce,
                ciphertext: B64.decode(&s.ciphertext).map_err(key_err)?,
            };
            let plain = store.open_document(SEALED_NAME, &doc)?;
            let p: Plain = serde_json::from_slice(&plain).map_err(key_err)?;
            let der = B64.decode(&p.pkcs8).map_err(key_err)?;
            return Self::from_parts(&der, p.cert_pem);
        }
        let mut rng = rand::rngs::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(key_err)?;
        let der = key.to_pkcs8_der().map_err(key_err)?;
        let der = der.as_bytes().to_vec();
        let pair = rcgen::KeyPair::try_from(der.as_slice()).map_err(key_err)?;
        let mut params =
            rcgen::CertificateParams::new(vec!["sns.vigil.local".to_owned()]).map_err(key_err)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Vigil SNS message signing");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Vigil");
        let cert = params.self_signed(&pair).map_err(key_err)?;
        let cert_pem = cert.pem();
        let plain = serde_json::to_vec(&Plain {
            pkcs8: B64.encode(&der),
            cert_pem: cert_pem.clone(),
        })
        .map_err(key_err)?;
        let doc = store.seal_document(SEALED_NAME, &plain)?;
        let stored = serde_json::to_vec(&Stored {
            master_key: doc.master_key.clone(),
            wrapped_key: B64.encode(&doc.wrapped_key),
            nonce: B64.encode(doc.nonce),
            ciphertext: B64.encode(&doc.ciphertext),
        })
        .map_err(key_err)?;
        store.put_document(DOC_KIND, DOC_NAME, &stored)?;
        Self::from_parts(&der, cert_pem)
    }

    fn from_parts(pkcs8: &[u8], cert_pem: String) -> Result<Self, SignerError> {
        let key = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8).map_err(key_err)?;
        let sha256 = ring::signature::RsaKeyPair::from_pkcs8(pkcs8).map_err(key_err)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, cert_pem.as_bytes());
        let id: String = digest
            .as_ref()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            sha1: rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key),
            sha256,
            cert_pem,
            cert_path: format!("/SimpleNotificationService-{id}.pem"),
        })
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The path the certificate is served at.
    pub fn cert_path(&self) -> &str {
        &self.cert_path
    }

    /// The signature of `text` for `SignatureVersion` `version` (1: SHA1withRSA, otherwise
    /// SHA256withRSA), base64.
    pub fn sign(&self, version: u8, text: &[u8]) -> String {
        if version == 1 {
            use rsa::signature::{SignatureEncoding as _, Signer as _};
            let sig = self.sha1.sign(text);
            return B64.encode(sig.to_bytes());
        }
        let mut sig = vec![0u8; self.sha256.public().modulus_len()];
        let rng = ring::rand::SystemRandom::new();
        match self
            .sha256
            .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, text, &mut sig)
        {
            Ok(()) => B64.encode(sig),
            Err(e) => {
                // ring fails only for a key it refused to load; the subscriber sees a
                // signature that does not verify.
                tracing::error!("signing an SNS delivery: {e}");
                String::new()
            }
        }
    }
}

/// The string SNS signs for a message with these members (`(name, value)` in the order the
/// module docs give; absent members left out by the caller).
pub fn string_to_sign(members: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (k, v) in members {
        s.push_str(k);
        s.push('\n');
        s.push_str(v);
        s.push('\n');
    }
    s
}

/// The signer, made on first use: most servers never deliver, and making a key takes a
/// moment, so a server starts without it and the first `Subscribe` (a blocking handler) or
/// delivery makes or loads it.
pub struct LazySigner {
    store: Store,
    cell: std::sync::OnceLock<std::sync::Arc<Signer>>,
    init: std::sync::Mutex<()>,
}

impl std::fmt::Debug for LazySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazySigner")
            .field("loaded", &self.cell.get().is_some())
            .finish_non_exhaustive()
    }
}

impl LazySigner {
    /// The signer of `store`, not loaded yet.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cell: std::sync::OnceLock::new(),
            init: std::sync::Mutex::new(()),
        }
    }

    /// The signer: loaded, or made and kept, on the first call (blocking then).
    pub fn get(&self) -> Result<std::sync::Arc<Signer>, SignerError> {
        if let Some(s) = self.cell.get() {
            return Ok(s.clone());
        }
        let _g = self.init.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = self.cell.get() {
            return Ok(s.clone());
        }
        let s = std::sync::Arc::new(Signer::load_or_create(&self.store)?);
        let _ = self.cell.set(s.clone());
        Ok(s)
    }

    /// The signer if it is loaded.
    pub fn loaded(&self) -> Option<std::sync::Arc<Signer>> {
        self.cell.get().cloned()
    }
}
