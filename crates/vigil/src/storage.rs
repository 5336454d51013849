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
