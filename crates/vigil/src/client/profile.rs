//! Credentials, region and endpoint, resolved the way the AWS CLI and SDKs resolve them, so
//! that `vigil` commands work against Vigil and against KVS with the same setup.
//!
//! - **Credentials**: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`)
//!   unless `--profile` is given; else the profile (`--profile`, `AWS_PROFILE`, or `default`)
//!   in the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, `~/.aws/credentials`),
//!   then in the config file (`AWS_CONFIG_FILE`, `~/.aws/config`, sections `[profile NAME]`
//!   and `[default]`). Other providers (SSO, process, instance metadata) are not read.
//! - **Region**: `--region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else
//!   `us-east-1`.
//! - **Endpoint**: `--endpoint-url`, `AWS_ENDPOINT_URL_KINESIS_VIDEO`, `AWS_ENDPOINT_URL`, the
//!   profile's `endpoint_url`, else KVS's `https://kinesisvideo.REGION.amazonaws.com`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use vigil_auth::SecretKey;
use vigil_auth::sign::SigningCredentials;

/// What the command line says; `None` where it says nothing.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
}

/// Where a client sends its calls, and with which credentials.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub endpoint_url: String,
    pub region: String,
    pub credentials: SigningCredentials,
}

/// An environment: the process's, or a fixed map in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment; empty values count as unset.
#[derive(Debug)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// Resolves endpoint, region and credentials (module docs).
pub fn resolve(o: &Overrides, env: &dyn Env) -> anyhow::Result<Resolved> {
    let profile_name = o
        .profile
        .clone()
        .or_else(|| env.var("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned());
    let home = env.var("HOME").map(PathBuf::from);
    let credentials_file = env
        .var("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
    let config_file = env
        .var("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/config")));
    let from_credentials = match &credentials_file {
        Some(p) => read_ini(p)?.remove(&profile_name).unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let from_config = match &config_file {
        Some(p) => {
            let mut sections = read_ini(p)?;
            let key = if profile_name == "default" {
                "default".to_owned()
            } else {
                format!("profile {profile_name}")
            };
            sections.remove(&key).unwrap_or_default()
        }
        None => BTreeMap::new(),
    };
    let profile_value = |key: &str| {
        from_credentials
            .get(key)
            .or_else(|| from_config.get(key))
            .filter(|v| !v.is_empty())
            .cloned()
    };

    let env_keys = match (
        env.var("AWS_ACCESS_KEY_ID"),
        env.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) if o.profile.is_none() => {
            Some((id, secret, env.var("AWS_SESSION_TOKEN")))
        }
        _ => None,
    };
    let (id, secret, token) = match env_keys {
        Some(k) => k,
        None => match (
            profile_value("aws_access_key_id"),
            profile_value("aws_secret_access_key"),
        ) {
            (Some(id), Some(secret)) => (id, secret, profile_value("aws_session_token")),
            _ => bail!(
                "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add \
                 aws_access_key_id and aws_secret_access_key to profile {profile_name:?} in {}",
                credentials_file
                    .as_deref()
                    .unwrap_or(Path::new("~/.aws/credentials"))
                    .display()
            ),
        },
    };

    let region = o
        .region
        .clone()
        .or_else(|| env.var("AWS_REGION"))
        .or_else(|| env.var("AWS_DEFAULT_REGION"))
        .or_else(|| profile_value("region"))
        .unwrap_or_else(|| "us-east-1".to_owned());
    let endpoint_url = o
        .endpoint_url
        .clone()
        .or_else(|| env.var("AWS_ENDPOINT_URL_KINESIS_VIDEO"))
        .or_else(|| env.var("AWS_ENDPOINT_URL"))
        .or_else(|| profile_value("endpoint_url"))
        .unwrap_or_else(|| format!("https://kinesisvideo.{region}.amazonaws.com"));
    Ok(Resolved {
        endpoint_url,
        region,
        credentials: SigningCredentials {
            access_key_id: id,
            secret: SecretKey::new(secret),
            session_token: token,
        },
    })
}

/// Reads an INI file of the AWS kind: `[section]` headers, `key = value` lines, `#` and `;`
/// comments. A missing file is empty.
fn read_ini(path: &Path) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(parse_ini(&text))
}

fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.clone()).or_default();
            section = Some(name);
            continue;
        }
        if let (Some(s), Some((k, v))) = (&section, line.split_once('=')) {
            out.entry(s.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn environment_first_then_profiles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::write(
            dir.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = sdef\n\n\
             [cam]\naws_access_key_id=AKCAM\naws_secret_access_key=scam\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".aws/config"),
            "[default]\nregion = eu-west-1\n[profile cam]\nregion = ap-south-1\n\
             endpoint_url = http://nvr:4566\n",
        )
        .unwrap();
        let home = dir.path().to_str().unwrap();

        let r = resolve(&Overrides::default(), &env(&[("HOME", home)])).unwrap();
        assert_eq!(r.credentials.access_key_id, "AKDEF");
        assert_eq!(r.region, "eu-west-1");
        assert_eq!(
            r.endpoint_url,
            "https://kinesisvideo.eu-west-1.amazonaws.com"
        );

        let e = env(&[
            ("HOME", home),
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "senv"),
            ("AWS_REGION", "us-west-2"),
            ("AWS_PROFILE", "cam"),
        ]);
        let r = resolve(&Overrides::default(), &e).unwrap();
        assert_eq!(r.credentials.access_key_id, "AKENV");
        assert_eq!(r.region, "us-west-2");
        assert_eq!(r.endpoint_url, "http://nvr:4566");

        // An explicit --profile wins over the environment's keys.
        let o = Overrides {
            profile: Some("cam".into()),
            region: Some("sa-east-1".into()),
            endpoint_url: Some("http://127.0.0.1:1".into()),
        };
        let r = resolve(&o, &e).unwrap();
        assert_eq!(r.credentials.access_key_id, "AKCAM");
        assert_eq!(r.region, "sa-east-1");
        assert_eq!(r.endpoint_url, "http://127.0.0.1:1");

        let err = resolve(&Overrides::default(), &env(&[("HOME", "/nonexistent")])).unwrap_err();
        assert!(err.to_string().contains("no credentials"), "{err}");
    }
}
