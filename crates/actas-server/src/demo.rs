//! `actas demo`: actas (console and gateway) and Northwind Lending, the demo portal, in
//! one process, with the example policy and seeded staff and customers, so a newcomer can
//! play every role. Also what the end-to-end tests start.

use crate::app::{Application, ServeSettings, StartError};
use crate::config::{Config, DataDir};
use crate::password::Password;
use crate::service::AllowChange;
use actas_core::scope::Risk;
use actas_core::staff::{DisplayName, Email, Role};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The example policy the demo runs with (`examples/policy.toml`).
pub const EXAMPLE_POLICY: &str = include_str!("../../../examples/policy.toml");

/// The password of every seeded staff member.
pub const STAFF_PASSWORD: &str = "demo-password";

/// The audience the portal expects in assertions.
pub const AUDIENCE: &str = "northwind";

/// The file in a demo data directory that marks it as one and holds the portal's app key
/// and webhook secret (the portal needs them in the clear; it is a demo).
const MARKER: &str = "demo-portal.json";

/// The seeded staff: email, name, role, allow-list level.
pub const STAFF: &[(&str, &str, Role, Option<Risk>)] = &[
    ("dana@northwind.example", "Dana Park", Role::Director, None),
    ("lee@northwind.example", "Lee Chen", Role::Lead, None),
    (
        "sarah@northwind.example",
        "Sarah Lee",
        Role::Agent,
        Some(Risk::High),
    ),
    (
        "omar@northwind.example",
        "Omar Haddad",
        Role::Agent,
        Some(Risk::Medium),
    ),
    ("ola@northwind.example", "Ola Nowak", Role::Agent, None),
    (
        "audrey@northwind.example",
        "Audrey Kim",
        Role::Auditor,
        None,
    ),
];

/// Where the demo listens and keeps its data.
#[derive(Debug, Clone)]
pub struct DemoSettings {
    /// Keep the data here; `None` uses a fresh temporary directory.
    pub data: Option<PathBuf>,
    /// The console and API.
    pub console_addr: SocketAddr,
    /// The gateway.
    pub gateway_addr: SocketAddr,
    /// The portal.
    pub portal_addr: SocketAddr,
    /// A policy to use instead of the example (tests use shorter limits).
    pub policy: Option<String>,
    /// The gateway's URL as the console links to it, when not `http://` + its address
    /// (tests use `localhost` to make the hand-off cross-site, as it is in production).
    pub gateway_url: Option<String>,
    /// The database (`[store] url`) for a fresh demo, when not the data directory's
    /// SQLite file (the tests run the demo on PostgreSQL too).
    pub database_url: Option<String>,
}

impl Default for DemoSettings {
    fn default() -> Self {
        Self {
            data: None,
            console_addr: ([127, 0, 0, 1], 8080).into(),
            gateway_addr: ([127, 0, 0, 1], 8081).into(),
            portal_addr: ([127, 0, 0, 1], 8082).into(),
            policy: None,
            gateway_url: None,
            database_url: None,
        }
    }
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The directory holds a real (non-demo) actas installation.
    #[error(
        "{0} holds an actas data directory that is not a demo's; give the demo its own directory"
    )]
    NotADemo(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A listener could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// actas itself could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Seeding failed.
    #[error("the demo data could not be set up: {0}")]
    Seed(String),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    app_key: String,
    webhook_secret: Option<String>,
}

/// A running demo.
pub struct Demo {
    /// actas.
    pub app: Application,
    /// The portal's address.
    pub portal_addr: SocketAddr,
    /// Where the data is.
    pub data: PathBuf,
    /// Whether the data is temporary (deleted at stop).
    pub temporary: bool,
    _temp: Option<TempDir>,
    portal_stop: tokio::sync::watch::Sender<bool>,
    portal_task: tokio::task::JoinHandle<()>,
}

/// A temporary directory removed when dropped (written here to keep `tempfile` a test
/// dependency only).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b).map_err(std::io::Error::other)?;
        let path = std::env::temp_dir().join(format!("actas-demo-{}", hex::encode(b)));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Demo {
    /// Sets up (first time) or reopens the demo's data, binds the three listeners and
    /// starts serving.
    pub async fn start(settings: DemoSettings) -> Result<Self, DemoError> {
        let (temp, root) = match &settings.data {
            Some(p) => (None, p.clone()),
            None => {
                let t = TempDir::new().map_err(io(Path::new("temporary directory")))?;
                let p = t.0.join("data");
                (Some(t), p)
            }
        };
        let data = DataDir::new(root.clone());
        let fresh = !root.join("actas.toml").exists();
        if !fresh && !root.join(MARKER).exists() {
            return Err(DemoError::NotADemo(root));
        }
        if fresh {
            data.init().map_err(|e| DemoError::Seed(e.to_string()))?;
            let policy_path = root.join("policy.toml");
            std::fs::write(
                &policy_path,
                settings.policy.as_deref().unwrap_or(EXAMPLE_POLICY),
            )
            .map_err(io(&policy_path))?;
        }
        let portal_listener = tokio::net::TcpListener::bind(settings.portal_addr)
            .await
            .map_err(|source| DemoError::Bind {
                addr: settings.portal_addr,
                source,
            })?;
        let portal_addr = portal_listener
            .local_addr()
            .map_err(|source| DemoError::Bind {
                addr: settings.portal_addr,
                source,
            })?;
        // The portal's address can change from run to run (port 0), so the gateway's
        // upstream is set at every start.
        let config_path = root.join("actas.toml");
        let text = std::fs::read_to_string(&config_path).map_err(io(&config_path))?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| DemoError::Seed(e.to_string()))?;
        config.gateway.upstream = format!("http://{portal_addr}");
        if fresh && settings.database_url.is_some() {
            config.store.url = settings.database_url.clone();
        }
        config.gateway.audience = AUDIENCE.to_owned();
        let text = format!(
            "# actas configuration for the demo. Paths are relative to this directory.\n{}",
            toml::to_string_pretty(&config).map_err(|e| DemoError::Seed(e.to_string()))?
        );
        std::fs::write(&config_path, text).map_err(io(&config_path))?;

        let app = Application::build(
            &data,
            ServeSettings {
                gateway_addr: Some(settings.gateway_addr),
                gateway_url: settings.gateway_url.clone(),
                ..ServeSettings::on(settings.console_addr)
            },
        )
        .await?;
        let marker_path = root.join(MARKER);
        let marker = if fresh {
            let m = seed(&app, portal_addr)
                .await
                .map_err(|e| DemoError::Seed(e.to_string()))?;
            let text = serde_json::to_vec_pretty(&m).map_err(|e| DemoError::Seed(e.to_string()))?;
            write_private(&marker_path, &text)?;
            m
        } else {
            let text = std::fs::read(&marker_path).map_err(io(&marker_path))?;
            serde_json::from_slice(&text).map_err(|e| DemoError::Seed(e.to_string()))?
        };
        let portal = demo_portal::Portal::new(demo_portal::PortalConfig {
            actas_url: format!("http://{}", app.console_addr()),
            app_key: marker.app_key,
            audience: AUDIENCE.to_owned(),
            webhook_secret: marker.webhook_secret,
        });
        let (portal_stop, mut stopped) = tokio::sync::watch::channel(false);
        let router = portal.router();
        let portal_task = tokio::spawn(async move {
            let serve = axum::serve(crate::app::no_delay(portal_listener), router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "the demo portal stopped");
            }
        });
        Ok(Self {
            app,
            portal_addr,
            data: root,
            temporary: temp.is_some(),
            _temp: temp,
            portal_stop,
            portal_task,
        })
    }

    /// Stops the portal and actas (which signs a final tree head).
    pub async fn stop(self) -> Result<(), DemoError> {
        let _ = self.portal_stop.send(true);
        let _ = self.portal_task.await;
        self.app
            .stop()
            .await
            .map_err(|e| DemoError::Seed(e.to_string()))?;
        Ok(())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DemoError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))
}

/// Staff, the allow-list, the portal's app key, and the customers as the portal reports
/// them (one ordinary, one sensitive, one that has revoked consent).
async fn seed(
    app: &Application,
    portal: SocketAddr,
) -> Result<Marker, crate::service::ServiceError> {
    let s = app.service();
    let dana =
        Email::parse(STAFF[0].0).map_err(|e| crate::service::ServiceError::invalid("email", e))?;
    for (i, (email, name, role, _)) in STAFF.iter().enumerate() {
        let email =
            Email::parse(email).map_err(|e| crate::service::ServiceError::invalid("email", e))?;
        let name = DisplayName::parse(name)
            .map_err(|e| crate::service::ServiceError::invalid("name", e))?;
        let password = Password::new(STAFF_PASSWORD.to_owned())
            .map_err(|e| crate::service::ServiceError::invalid("password", e))?;
        s.add_staff(email, name, *role, password, (i > 0).then_some(&dana))
            .await?;
    }
    for (email, _, _, risk) in STAFF {
        if let Some(risk) = risk {
            let email = Email::parse(email)
                .map_err(|e| crate::service::ServiceError::invalid("email", e))?;
            s.change_allow_list(
                &email,
                AllowChange::Grant(*risk),
                &dana,
                "On the demo's support rota",
            )
            .await?;
        }
    }
    let key = s
        .create_app_key(
            &dana,
            "portal",
            Some(&format!("http://{portal}/hooks/actas")),
        )
        .await?;
    for (id, name, flags) in [
        ("acme", "Acme Co", vec![]),
        ("globex", "Globex Ltd", vec!["sensitive".to_owned()]),
        ("initech", "Initech", vec![]),
    ] {
        s.sync_account(&key.app, id, name, &flags).await?;
    }
    s.set_consent(&key.app, "initech", "revoked").await?;
    Ok(Marker {
        app_key: key.key.expose().to_owned(),
        webhook_secret: key.webhook_secret.map(|w| w.expose().to_owned()),
    })
}
