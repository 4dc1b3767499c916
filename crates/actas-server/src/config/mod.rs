//! The data directory: configuration, policy, the ledger's signing key and the database.
//!
//! `actas init` creates it; every other command reads it. The signing key is generated
//! there at first start with mode 0600 and never leaves it (nothing secret is in the repo).

use actas_core::policy::{DEFAULT_POLICY, Policy, PolicyError};
use actas_core::tree_head::LedgerKey;
use actas_store::HeadSchedule;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod auth;
pub use auth::{
    AuthConfig, AuthSettings, OidcConfig, OidcSettings, Provisioning, RoleGroups, ScimConfig,
};

/// The configuration file's name inside the data directory.
pub const CONFIG_FILE: &str = "actas.toml";
/// The signing key's file name inside the data directory.
pub const KEY_FILE: &str = "ledger.key";
/// The next ledger key while a rotation is under way (`actas audit rotate-key`).
pub const NEW_KEY_FILE: &str = "ledger.key.new";
/// The gateway's assertion key, inside the data directory.
pub const ASSERTION_KEY_FILE: &str = "assertion.key";

/// Public halves of replaced assertion keys, published until their assertions expire.
pub const RETIRED_ASSERTION_KEYS_FILE: &str = "assertion-retired.json";

/// Why the data directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No configuration file.
    #[error("there is no actas data directory at {0}; run `actas init` first, or pass --data DIR")]
    NotInitialized(PathBuf),
    /// `init` on a directory that already has one.
    #[error("{0} is already an actas data directory; nothing was changed")]
    AlreadyInitialized(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The configuration file is not valid.
    #[error("{path}: {message}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// The policy file is not valid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The key file is not usable.
    #[error("{path}: {why}")]
    Key {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `[store]`: which database, and how it is opened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://file` (relative to the data directory) or `postgres://…`; the
    /// environment's `ACTAS_DATABASE_URL` wins over it. When neither is set, the SQLite
    /// file `database` names. Several `actas serve` instances share one PostgreSQL
    /// database; a SQLite file belongs to one machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PostgreSQL: connections each instance keeps for reads (its ledger writer has one
    /// more of its own).
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// PostgreSQL: the longest any one statement may run before the database cancels it.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_seconds: u64,
    /// PostgreSQL: how long to wait for a connection before giving up.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    /// Apply migrations this version knows and the database lacks when a command or the
    /// server opens it (the embedded default). With `false`, only `actas migrate` changes
    /// the schema, and everything else refuses a database that needs it. A database a
    /// newer actas changed is refused either way.
    #[serde(default = "yes")]
    pub migrate_on_start: bool,
}

fn default_pool_size() -> u32 {
    8
}

fn default_statement_timeout() -> u64 {
    30
}

fn default_connect_timeout() -> u64 {
    10
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: default_pool_size(),
            statement_timeout_seconds: default_statement_timeout(),
            connect_timeout_seconds: default_connect_timeout(),
            migrate_on_start: true,
        }
    }
}

/// The environment variable naming the database, over `[store] url`.
pub const DATABASE_URL_ENV: &str = "ACTAS_DATABASE_URL";

/// When tree heads are signed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// Sign a head after this many new events.
    pub head_every_events: u64,
    /// ... or after this many seconds with new events.
    pub head_every_seconds: u64,
    /// The most changes committed together in one transaction (group commit). 1 means one
    /// transaction per event, which is slower; benchmarks use it as their baseline.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// The log's name in its C2SP checkpoint notes (`host/ledger`). When absent, the
    /// console's public host and `/ledger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl LedgerConfig {
    /// The checkpoint origin: the one configured, or the console's host and `/ledger`
    /// (`actas/ledger` with no public address).
    pub fn origin(
        &self,
        console_url: Option<&str>,
    ) -> Result<actas_core::checkpoint::Origin, String> {
        if let Some(o) = &self.origin {
            return actas_core::checkpoint::Origin::parse(o);
        }
        let host = console_url
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_owned(),
                })
            })
            .unwrap_or_else(|| "actas".to_owned());
        actas_core::checkpoint::Origin::parse(&format!("{host}/ledger"))
    }
}

fn default_max_batch() -> usize {
    actas_store::sqlite::MAX_BATCH
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            head_every_events: 1000,
            head_every_seconds: 10,
            max_batch: default_max_batch(),
            origin: None,
        }
    }
}

impl Config {
    /// How the store is opened, from `[store]` and `[ledger]`.
    pub fn store_options(&self) -> actas_store::OpenOptions {
        actas_store::OpenOptions {
            heads: self.ledger.schedule(),
            max_batch: self.ledger.max_batch,
            migrate: self.store.migrate_on_start,
            pool_size: self.store.pool_size.max(1),
            statement_timeout: Duration::from_secs(self.store.statement_timeout_seconds.max(1)),
            connect_timeout: Duration::from_secs(self.store.connect_timeout_seconds.max(1)),
        }
    }
}

impl LedgerConfig {
    /// As the store's schedule.
    pub fn schedule(&self) -> HeadSchedule {
        HeadSchedule {
            every_events: self.head_every_events.max(1),
            every: Duration::from_secs(self.head_every_seconds.max(1)),
        }
    }
}

/// Where `actas serve` listens unless told otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The console and API listener.
    pub console_addr: std::net::SocketAddr,
    /// The gateway listener.
    #[serde(default = "default_gateway_addr")]
    pub gateway_addr: std::net::SocketAddr,
    /// The console's public URL, when served behind a proxy or over https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
    /// The gateway's public URL (`https://support-gw.example.com`), when it differs from
    /// `http://` + its address: the console links agents there, and the product is told
    /// its host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_url: Option<String>,
}

fn default_gateway_addr() -> std::net::SocketAddr {
    ([127, 0, 0, 1], 8081).into()
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            console_addr: ([127, 0, 0, 1], 8080).into(),
            gateway_addr: default_gateway_addr(),
            console_url: None,
            gateway_url: None,
        }
    }
}

/// How the gateway speaks to the product.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The `aud` of every assertion: the name the product expects.
    pub audience: String,
    /// The product's address, as the gateway reaches it (live mode).
    #[serde(default = "default_upstream")]
    pub upstream: String,
    /// A separate copy of the product for `mirror` sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// The largest body (MiB) the gateway reads whole: a JSON answer to mask, and a
    /// request to record; larger ones are refused (and recorded). HTML is streamed and has
    /// no such limit.
    #[serde(default = "default_max_body_mib")]
    pub max_body_mib: u32,
    /// The `Host` the product sees: `upstream` (its own address) or `browser` (the
    /// gateway's own public host, which browsers ask for; never whatever `Host` a client
    /// sends, which a product could read as another tenant).
    #[serde(default)]
    pub host: HostHeader,
    /// Whether to send `X-Forwarded-For`, `-Proto` and `-Host` (always replacing any the
    /// browser sent, which are never trusted).
    #[serde(default = "yes")]
    pub forwarded_headers: bool,
    /// How long (seconds) the gateway waits to connect to the product, live connections
    /// included.
    #[serde(default = "default_gateway_connect_timeout")]
    pub connect_timeout_seconds: u64,
    /// The longest (seconds) the product may take over one answer, from the request sent
    /// to its last byte: one cut off at this is refused or broken off, and recorded.
    #[serde(default = "default_answer_timeout")]
    pub answer_timeout_seconds: u64,
}

fn default_gateway_connect_timeout() -> u64 {
    5
}

fn default_answer_timeout() -> u64 {
    120
}

/// Which `Host` header the product receives.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HostHeader {
    /// The product's own host, from `upstream`.
    #[default]
    Upstream,
    /// The gateway's public host, as browsers ask for it.
    Browser,
}

fn default_upstream() -> String {
    "http://127.0.0.1:8082".into()
}

fn default_max_body_mib() -> u32 {
    16
}

fn yes() -> bool {
    true
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            audience: "product".into(),
            upstream: default_upstream(),
            mirror: None,
            max_body_mib: default_max_body_mib(),
            host: HostHeader::default(),
            forwarded_headers: true,
            connect_timeout_seconds: default_gateway_connect_timeout(),
            answer_timeout_seconds: default_answer_timeout(),
        }
    }
}

/// `actas.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The SQLite database file, relative to the data directory (used when `[store] url`
    /// and `ACTAS_DATABASE_URL` name no other).
    pub database: PathBuf,
    /// The policy file, relative to the data directory.
    pub policy: PathBuf,
    /// How the database is opened.
    #[serde(default)]
    pub store: StoreConfig,
    /// Tree head schedule.
    #[serde(default)]
    pub ledger: LedgerConfig,
    /// Listen addresses.
    #[serde(default)]
    pub server: ServerConfig,
    /// The gateway.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// Checking tickets with the helpdesk.
    #[serde(default, skip_serializing_if = "TicketsConfig::is_off")]
    pub tickets: TicketsConfig,
    /// How staff sign in.
    #[serde(default, skip_serializing_if = "AuthConfig::is_default")]
    pub auth: AuthConfig,
}

/// `[tickets]`: ask the helpdesk whether a ticket exists and is about the account before
/// a request is made (see `actas_core::ticket_check` for what is sent and expected).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    /// Where to ask; no check when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_url: Option<String>,
    /// How long to wait for the answer.
    #[serde(default = "default_ticket_timeout")]
    pub timeout_seconds: u64,
}

fn default_ticket_timeout() -> u64 {
    5
}

impl TicketsConfig {
    fn is_off(&self) -> bool {
        self.verify_url.is_none()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database: "actas.db".into(),
            policy: "policy.toml".into(),
            store: StoreConfig::default(),
            ledger: LedgerConfig::default(),
            server: ServerConfig::default(),
            gateway: GatewayConfig::default(),
            tickets: TicketsConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

/// Everything a command needs from the data directory.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The checked policy.
    pub policy: Policy,
    /// The ledger signing key.
    pub key: LedgerKey,
    /// Where the database is (`[store] url`, `ACTAS_DATABASE_URL`, or the SQLite file).
    pub location: actas_store::Location,
    /// The gateway's assertion key seed (32 bytes).
    pub assertion_seed: Seed,
    /// Replaced assertion keys (public halves), some perhaps still to be published.
    pub retired_assertion_keys: Vec<RetiredKey>,
    /// How staff sign in (`[auth]` with the environment applied).
    pub auth: AuthSettings,
}

pub use crate::assertion::RetiredKey;

/// Secret key bytes. Never printed.
pub struct Seed(pub Vec<u8>);

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(…)")
    }
}

/// A data directory.
#[derive(Debug, Clone)]
pub struct DataDir(PathBuf);

impl DataDir {
    /// Names a data directory (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }

    /// Creates the directory (0700), the configuration, the starter policy and a new
    /// signing key (0600). Refuses to touch a directory that already has a configuration.
    pub fn init(&self) -> Result<LedgerKey, ConfigError> {
        let config_path = self.file(CONFIG_FILE);
        if config_path.exists() {
            return Err(ConfigError::AlreadyInitialized(self.0.clone()));
        }
        fs::create_dir_all(&self.0).map_err(io(&self.0))?;
        fs::set_permissions(&self.0, fs::Permissions::from_mode(0o700)).map_err(io(&self.0))?;

        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|e| ConfigError::Key {
            path: self.file(KEY_FILE),
            why: format!("no random source: {e}"),
        })?;
        let key = LedgerKey::from_bytes(&secret).map_err(|e| ConfigError::Key {
            path: self.file(KEY_FILE),
            why: e.to_string(),
        })?;
        write_new(&self.file(KEY_FILE), &secret, 0o600)?;

        let config = Config::default();
        let policy_path = self.file(&config.policy);
        if !policy_path.exists() {
            write_new(&policy_path, DEFAULT_POLICY.as_bytes(), 0o644)?;
        }
        let text = format!(
            "# actas configuration. Paths are relative to this directory.\n{}",
            toml::to_string_pretty(&config).map_err(|e| ConfigError::Parse {
                path: config_path.clone(),
                message: e.to_string(),
            })?
        );
        // Written last: its presence means the directory is complete.
        write_new(&config_path, text.as_bytes(), 0o644)?;
        Ok(key)
    }

    /// The next ledger key, written beside the current one as `ledger.key.new` (0600)
    /// before the ledger records the replacement, so a rotation cut short can be finished
    /// with the same key. Made once; a later call reads the one already there.
    pub fn staged_ledger_key(&self) -> Result<LedgerKey, ConfigError> {
        let path = self.file(NEW_KEY_FILE);
        if !path.exists() {
            let mut secret = [0u8; 32];
            getrandom::getrandom(&mut secret).map_err(|e| ConfigError::Key {
                path: path.clone(),
                why: format!("no random source: {e}"),
            })?;
            write_new(&path, &secret, 0o600)?;
        }
        let bytes = fs::read(&path).map_err(io(&path))?;
        LedgerKey::from_bytes(&bytes).map_err(|e| ConfigError::Key {
            path,
            why: e.to_string(),
        })
    }

    /// Puts the staged ledger key in place of the current one (an atomic rename; the old
    /// secret is gone, its public half stays in the ledger).
    pub fn install_staged_ledger_key(&self) -> Result<(), ConfigError> {
        let from = self.file(NEW_KEY_FILE);
        fs::rename(&from, self.file(KEY_FILE)).map_err(io(&from))?;
        fs::File::open(&self.0)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.0))
    }

    /// Reads the configuration, the policy and the key.
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let config_path = self.file(CONFIG_FILE);
        if !config_path.exists() {
            return Err(ConfigError::NotInitialized(self.0.clone()));
        }
        let text = fs::read_to_string(&config_path).map_err(io(&config_path))?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: config_path.clone(),
            message: e.to_string(),
        })?;
        let policy_path = self.file(&config.policy);
        let policy_text = fs::read_to_string(&policy_path).map_err(io(&policy_path))?;
        let policy = Policy::from_toml(&policy_text, &policy_path.display().to_string())?;
        let key = self.read_key()?;
        let assertion_seed = self.assertion_seed()?;
        let retired_assertion_keys = self.retired_assertion_keys()?;
        let url = std::env::var(DATABASE_URL_ENV)
            .ok()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| config.store.url.clone());
        let location = match url {
            Some(url) => actas_store::Location::parse(url.trim(), &self.0).map_err(|e| {
                ConfigError::Parse {
                    path: config_path.clone(),
                    message: e.to_string(),
                }
            })?,
            None => actas_store::Location::Sqlite(self.file(&config.database)),
        };
        let auth = config.auth.resolve(&self.0, &config_path)?;
        Ok(Loaded {
            auth,
            assertion_seed,
            retired_assertion_keys,
            location,
            config,
            policy,
            key,
        })
    }

    /// The assertion key, generated at first start if missing (0600).
    fn assertion_seed(&self) -> Result<Seed, ConfigError> {
        let path = self.file(ASSERTION_KEY_FILE);
        if !path.exists() {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| ConfigError::Key {
                path: path.clone(),
                why: format!("no random source: {e}"),
            })?;
            write_new(&path, &seed, 0o600)?;
        }
        let meta = fs::metadata(&path).map_err(io(&path))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(ConfigError::Key {
                path,
                why: "the assertion key can be read by other users; run `chmod 600` on it".into(),
            });
        }
        let bytes = fs::read(&path).map_err(io(&path))?;
        if bytes.len() != 32 {
            return Err(ConfigError::Key {
                path,
                why: "an assertion key is 32 bytes".into(),
            });
        }
        Ok(Seed(bytes))
    }

    fn retired_assertion_keys(&self) -> Result<Vec<RetiredKey>, ConfigError> {
        let path = self.file(RETIRED_ASSERTION_KEYS_FILE);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
            path,
            message: e.to_string(),
        })
    }

    fn read_key(&self) -> Result<LedgerKey, ConfigError> {
        let path = self.file(KEY_FILE);
        let meta = fs::metadata(&path).map_err(io(&path))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(ConfigError::Key {
                path,
                why: "the signing key can be read by other users; run `chmod 600` on it".into(),
            });
        }
        let bytes = fs::read(&path).map_err(io(&path))?;
        LedgerKey::from_bytes(&bytes).map_err(|e| ConfigError::Key {
            path,
            why: e.to_string(),
        })
    }
}

impl DataDir {
    /// The secret actas signs its questions to the helpdesk with (`ticket-check.secret`,
    /// 0600), made at the first start that needs it; the helpdesk is given a copy.
    pub fn ticket_secret(&self) -> Result<String, ConfigError> {
        let path = self.file(TICKET_SECRET_FILE);
        if let Ok(text) = fs::read_to_string(&path) {
            let text = text.trim();
            if text.len() < 32 {
                return Err(ConfigError::Key {
                    path,
                    why: "the secret is shorter than 32 characters; delete the file to make a new one".into(),
                });
            }
            return Ok(text.to_owned());
        }
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|e| ConfigError::Key {
            path: path.clone(),
            why: format!("no random source: {e}"),
        })?;
        let text = hex::encode(secret);
        write_new(&path, text.as_bytes(), 0o600)?;
        Ok(text)
    }
}

/// Where the helpdesk-check secret is kept.
pub const TICKET_SECRET_FILE: &str = "ticket-check.secret";

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ConfigError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_a_private_key_and_refuses_to_run_twice() {
        let dir = tempfile::tempdir().expect("tmp");
        let data = DataDir::new(dir.path().join("data"));
        let key = data.init().expect("init");
        let mode = fs::metadata(data.path().join(KEY_FILE))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            data.init(),
            Err(ConfigError::AlreadyInitialized(_))
        ));
        let loaded = data.load().expect("load");
        assert_eq!(loaded.key.public(), key.public());
        fs::set_permissions(
            data.path().join(KEY_FILE),
            fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        assert!(matches!(data.load(), Err(ConfigError::Key { .. })));
    }

    #[test]
    fn a_missing_directory_says_to_run_init() {
        let dir = tempfile::tempdir().expect("tmp");
        let err = DataDir::new(dir.path().join("nope"))
            .load()
            .expect_err("missing");
        assert!(err.to_string().contains("run `actas init` first"), "{err}");
    }
}
