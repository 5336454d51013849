//! Options that locate and unlock the fragment store, shared by `vigil serve` and `vigil check`.

use std::path::PathBuf;

use anyhow::Context;
use vigil_store::StoreConfig;
use vigil_store::crypto::MasterKey;

/// Where the store lives and which master key it uses.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The data directory: segment files, the index and its backup, and the default master
    /// key (`keys/default.key`, created with mode 0600 when the directory is new, and never
    /// replaced: a store whose key or index is missing or damaged is refused).
    #[arg(
        long,
        env = "VIGIL_DATA_DIR",
        value_name = "DIR",
        default_value = "vigil-data"
    )]
    pub data_dir: PathBuf,

    /// A master key supplied from outside the data directory, as 64 hexadecimal digits (32
    /// bytes). New streams that name no KmsKeyId use it; streams already written under other
    /// keys keep them. Prefer the environment variable to the command line.
    #[arg(
        long,
        env = "VIGIL_MASTER_KEY",
        value_name = "HEX",
        hide_env_values = true
    )]
    pub master_key: Option<String>,

    /// The id of `--master-key`: what streams report as their KmsKeyId.
    #[arg(
        long,
        env = "VIGIL_MASTER_KEY_ID",
        value_name = "ID",
        default_value = "vigil/master"
    )]
    pub master_key_id: String,
}

impl StoreArgs {
    /// The store configuration these options describe.
    pub fn config(&self) -> anyhow::Result<StoreConfig> {
        let mut cfg = StoreConfig::new(&self.data_dir);
        if let Some(hex) = &self.master_key {
            let key = MasterKey::from_hex(self.master_key_id.clone(), hex)
                .context("VIGIL_MASTER_KEY / --master-key")?;
            cfg.master_keys.push(key);
            cfg.default_master_key = Some(self.master_key_id.clone());
        }
        Ok(cfg)
    }
}

/// Parses a size: a number of bytes, or a number with a unit, binary (`KiB`, `MiB`, `GiB`,
/// `TiB`) or decimal (`KB`, `MB`, `GB`, `TB`; `K`, `M`, `G`, `T` are binary), case-insensitive,
/// with or without a space: `1073741824`, `512MiB`, `10 GB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 1073741824, 512MiB, 10GB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("1073741824"), Ok(1 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("10 GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("1.5GiB").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}
