//! The PutMedia session limits of `vigil serve` (docs/configuration.md, "PutMedia limits"):
//! flags, environment variables and configuration-file keys, made into the server's
//! [`PutMediaConfig`] (whose docs, and `vigil_api_kvs::media::sessions`'s, explain each limit).

use clap::ArgMatches;
use tracing::warn;
use vigil_api_kvs::media::sessions::PutMediaConfig;

use crate::config::{FileConfig, defaulted};

/// The PutMedia limits' arguments of `vigil serve` (flattened into [`crate::serve::Args`]).
#[derive(Debug, Clone, clap::Args)]
pub struct PutMediaArgs {
    /// Most PutMedia sessions open at once, all streams and callers together; more are refused
    /// with ClientLimitExceededException (400).
    #[arg(
        long,
        env = "VIGIL_MAX_PUTMEDIA_SESSIONS",
        value_name = "N",
        default_value_t = 2000,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_putmedia_sessions: usize,

    /// Most PutMedia sessions one caller (an access key; with --allow-anonymous, a client
    /// address) has open at once, all streams together; more are refused with
    /// ClientLimitExceededException (400). Keep it below --max-putmedia-sessions, or one key
    /// can take every place.
    #[arg(
        long,
        env = "VIGIL_MAX_PUTMEDIA_SESSIONS_PER_KEY",
        value_name = "N",
        default_value_t = 1000,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_putmedia_sessions_per_key: usize,

    /// The least request body, in bytes, a PutMedia session must bring in every minute (once
    /// it is a minute old), or it ends with ERROR 4000; 0 turns the rule off.
    #[arg(
        long,
        env = "VIGIL_PUTMEDIA_MIN_BYTES_PER_MINUTE",
        value_name = "N",
        default_value_t = 1024,
        value_parser = clap::builder::RangedU64ValueParser::<u64>::new()
    )]
    pub putmedia_min_bytes_per_minute: u64,
}

impl PutMediaArgs {
    /// Applies the configuration file's keys to the settings left at their built-in default.
    pub fn apply_file(&mut self, f: &FileConfig, m: &ArgMatches) {
        if let Some(v) = f
            .max_putmedia_sessions
            .filter(|_| defaulted(m, "max_putmedia_sessions"))
        {
            self.max_putmedia_sessions = v.max(1);
        }
        if let Some(v) = f
            .max_putmedia_sessions_per_key
            .filter(|_| defaulted(m, "max_putmedia_sessions_per_key"))
        {
            self.max_putmedia_sessions_per_key = v.max(1);
        }
        if let Some(v) = f
            .putmedia_min_bytes_per_minute
            .filter(|_| defaulted(m, "putmedia_min_bytes_per_minute"))
        {
            self.putmedia_min_bytes_per_minute = v;
        }
    }

    /// Why these settings deserve a warning at startup, if they do.
    pub fn warning(&self) -> Option<String> {
        (self.max_putmedia_sessions_per_key >= self.max_putmedia_sessions).then(|| {
            format!(
                "max_putmedia_sessions_per_key ({}) is not below max_putmedia_sessions ({}): \
                 one access key can take every PutMedia place, and every other producer is \
                 then refused",
                self.max_putmedia_sessions_per_key, self.max_putmedia_sessions
            )
        })
    }

    /// The server's PutMedia settings, logging [`PutMediaArgs::warning`]. The
    /// minimum-progress window stays the default, a minute.
    pub fn config(&self) -> PutMediaConfig {
        if let Some(w) = self.warning() {
            warn!("{w}");
        }
        PutMediaConfig {
            max_sessions: self.max_putmedia_sessions,
            max_sessions_per_key: self.max_putmedia_sessions_per_key,
            min_progress_bytes: self.putmedia_min_bytes_per_minute,
            ..PutMediaConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::PutMediaArgs;
    use vigil_api_kvs::media::sessions::PutMediaConfig;

    #[test]
    fn defaults_are_the_libraries_and_the_window_is_a_minute() {
        let a = PutMediaArgs {
            max_putmedia_sessions: 2000,
            max_putmedia_sessions_per_key: 1000,
            putmedia_min_bytes_per_minute: 1024,
        };
        let (c, d) = (a.config(), PutMediaConfig::default());
        assert_eq!(c.max_sessions, d.max_sessions);
        assert_eq!(c.max_sessions_per_key, d.max_sessions_per_key);
        assert_eq!(c.min_progress_bytes, d.min_progress_bytes);
        // "Per minute" holds only while the window is 60 s.
        assert_eq!(c.min_progress_window, Duration::from_secs(60));
        assert_eq!(a.warning(), None);
        let one_key_takes_all = PutMediaArgs {
            max_putmedia_sessions_per_key: 2000,
            ..a
        };
        let w = one_key_takes_all.warning().unwrap_or_default();
        assert!(w.contains("every PutMedia place"), "{w:?}");
    }
}
