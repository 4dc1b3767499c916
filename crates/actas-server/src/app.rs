//! The running server: binds its listeners (port 0 allowed), serves until asked to stop,
//! runs the session reaper, and on a clean stop drains the ledger writer and signs a
//! final tree head. Tests start it exactly as `actas serve` does.

use crate::config::DataDir;
use crate::http::{AppState, RequestCounter, console_router};
use crate::service::Service;
use actas_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often page copies past the policy's retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often the reaper looks for sessions past their limits.
pub const REAP_EVERY: Duration = Duration::from_secs(5);

/// Where to listen.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// The console and API listener.
    pub console_addr: SocketAddr,
    /// The gateway listener, if the gateway runs in this process.
    pub gateway_addr: Option<SocketAddr>,
    /// The console's public URL (e.g. `https://support.example.com`), when it differs from
    /// `http://` + the address; over https cookies become `__Host-` and Secure.
    pub console_url: Option<String>,
    /// How notifications to the product are paced.
    pub delivery: crate::notify::DeliveryTiming,
    /// The gateway's public URL, when it differs from `http://` + its address; the console
    /// links agents there to open a session.
    pub gateway_url: Option<String>,
}

impl ServeSettings {
    /// Listen on `console_addr`, served as `http://` that address.
    pub fn on(console_addr: SocketAddr) -> Self {
        Self {
            console_addr,
            gateway_addr: None,
            console_url: None,
            delivery: crate::notify::DeliveryTiming::default(),
            gateway_url: None,
        }
    }
}

/// A started server.
pub struct Application {
    console_addr: SocketAddr,
    gateway_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    store: Arc<dyn Store>,
    service: Service,
    assertions: Arc<crate::assertion::AssertionSigner>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory is not usable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] actas_store::StoreError),
    /// The assertion keys could not be loaded or stored.
    #[error("the assertion keys can't be used: {0}")]
    Keys(String),
    /// `[ledger] origin` is not a valid log name.
    #[error("[ledger] origin: {0}")]
    Origin(String),
    /// A listener could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl Application {
    /// Opens the data directory and binds the listeners; serving starts at once.
    pub async fn build(data: &DataDir, settings: ServeSettings) -> Result<Self, StartError> {
        let loaded = data.load()?;
        let ledger_origin = loaded
            .config
            .ledger
            .origin(settings.console_url.as_deref())
            .map_err(StartError::Origin)?;
        let seal = crate::service::keys::SealKey::from_ledger_key(&loaded.key.to_bytes());
        let store =
            actas_store::open(&loaded.location, loaded.key, loaded.config.store_options()).await?;
        let issuer = settings
            .console_url
            .clone()
            .unwrap_or_else(|| "actas".to_owned());
        let mut service =
            Service::new(store.clone(), Arc::new(loaded.policy.clone())).with_assertion_seal(seal);
        // A replaced ledger key would sign heads nobody can verify: refuse to start.
        service
            .check_ledger_key_current()
            .await
            .map_err(|e| StartError::Keys(e.to_string()))?;
        // Every instance signs with the key the database holds (this data directory's key
        // files seed it the first time).
        let (seed, retired) = service
            .load_assertion_keys(&loaded.assertion_seed.0, &loaded.retired_assertion_keys)
            .await
            .map_err(|e| StartError::Keys(e.to_string()))?;
        let assertions = Arc::new(
            crate::assertion::AssertionSigner::with_retired(
                &seed,
                retired,
                &issuer,
                &loaded.config.gateway.audience,
            )
            .map_err(|e| StartError::Keys(e.to_string()))?,
        );
        let assertions_for_gateway = assertions.clone();
        if let Some(url) = &loaded.config.tickets.verify_url {
            // https, or plain http only to this machine (a bridge beside actas): an answer
            // anyone on the way could forge would be no check.
            let parsed = url::Url::parse(url).ok().filter(|u| match u.scheme() {
                "https" => true,
                "http" => match u.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(d)) => d == "localhost",
                    None => false,
                },
                _ => false,
            });
            if parsed.is_none() {
                return Err(StartError::Config(crate::config::ConfigError::Parse {
                    path: data.path().join("actas.toml"),
                    message: format!(
                        "tickets.verify_url: {url:?} must be an https address (plain http only to localhost)"
                    ),
                }));
            }
            let secret = data.ticket_secret().map_err(StartError::Config)?;
            let check = crate::service::tickets::TicketCheck::new(
                url.clone(),
                secret,
                std::time::Duration::from_secs(loaded.config.tickets.timeout_seconds.max(1)),
            )
            .map_err(|e| {
                StartError::Config(crate::config::ConfigError::Parse {
                    path: data.path().join("actas.toml"),
                    message: format!("tickets.verify_url: no HTTP client for it: {e}"),
                })
            })?;
            service = service.with_ticket_check(check);
        }
        let listener = tokio::net::TcpListener::bind(settings.console_addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: settings.console_addr,
                source,
            })?;
        let console_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: settings.console_addr,
            source,
        })?;
        // The gateway is bound first so the console can link agents to it.
        let mut gateway_listener = None;
        let mut gateway_addr = None;
        if let Some(addr) = settings.gateway_addr {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            gateway_addr = Some(
                listener
                    .local_addr()
                    .map_err(|source| StartError::Bind { addr, source })?,
            );
            gateway_listener = Some(listener);
        }
        // Sign-in through the identity provider sends the browser back to this console:
        // its public URL when configured, otherwise the address it listens on.
        if let Some(oidc) = loaded.auth.oidc.clone() {
            let console = settings
                .console_url
                .clone()
                .unwrap_or_else(|| format!("http://{console_addr}"));
            let redirect = oidc.redirect_url.clone().unwrap_or_else(|| {
                format!("{}/sign-in/sso/callback", console.trim_end_matches('/'))
            });
            let sign_on =
                crate::service::sign_on::SignOn::new(oidc, &redirect).map_err(|message| {
                    StartError::Config(crate::config::ConfigError::Parse {
                        path: data.path().join("actas.toml"),
                        message: format!("[auth.oidc]: {message}"),
                    })
                })?;
            service = service.with_sign_on(sign_on);
        }
        if !loaded.auth.local_passwords {
            service = service.without_local_passwords();
        }
        if let Some(token) = &loaded.auth.scim_token {
            service = service.with_scim_token(token);
        }
        let (stop, stopped) = watch::channel(false);
        let gateway_metrics = Arc::new(crate::gateway::GatewayMetrics::default());
        let state = AppState {
            gateway_metrics: gateway_metrics.clone(),
            gateway_url: settings
                .gateway_url
                .clone()
                .or_else(|| gateway_addr.map(|a| format!("http://{a}"))),
            service: service.clone(),
            requests: Arc::new(RequestCounter::default()),
            site: crate::http::auth::Site::new(settings.console_url.as_deref()),
            ledger_origin,
            assertions: assertions.clone(),
            data: data.clone(),
            stopping: stopped.clone(),
            live_streams: Arc::new(tokio::sync::Semaphore::new(crate::http::LIVE_STREAMS)),
        };
        let mut on_stop = stopped.clone();
        let console = tokio::spawn(async move {
            let serve = axum::serve(
                no_delay(listener),
                console_router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = on_stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "the console listener failed");
            }
        });
        let mut tasks = vec![console];
        let gateway_public = settings
            .gateway_url
            .clone()
            .or_else(|| gateway_addr.map(|a| format!("http://{a}")))
            .unwrap_or_default();
        if let Some(listener) = gateway_listener {
            let masker =
                crate::gateway::rewrite::HtmlMasker::new(service.policy()).map_err(|e| {
                    StartError::Config(crate::config::ConfigError::Parse {
                        path: data.path().join(&loaded.config.policy),
                        message: e.to_string(),
                    })
                })?;
            let connect_timeout =
                Duration::from_secs(loaded.config.gateway.connect_timeout_seconds.max(1));
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(connect_timeout)
                .timeout(Duration::from_secs(
                    loaded.config.gateway.answer_timeout_seconds.max(1),
                ))
                .build()
                .map_err(|e| {
                    StartError::Config(crate::config::ConfigError::Parse {
                        path: data.path().join(crate::config::CONFIG_FILE),
                        message: format!("the gateway's HTTP client could not start: {e}"),
                    })
                })?;
            let gw = crate::gateway::GatewayState {
                service: service.clone(),
                masker: Arc::new(masker),
                assertions: assertions_for_gateway,
                upstream: loaded.config.gateway.upstream.clone(),
                mirror: loaded.config.gateway.mirror.clone(),
                client,
                connect_timeout,
                max_body: usize::try_from(loaded.config.gateway.max_body_mib)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(1024 * 1024),
                host: loaded.config.gateway.host,
                forwarded_headers: loaded.config.gateway.forwarded_headers,
                metrics: gateway_metrics,
                origins: Arc::new(crate::gateway::rewrite::Origins::new(
                    std::iter::once(loaded.config.gateway.upstream.as_str())
                        .chain(loaded.config.gateway.mirror.as_deref())
                        .chain(
                            service
                                .policy()
                                .gateway
                                .product_origins
                                .iter()
                                .map(String::as_str),
                        ),
                    &gateway_public,
                )),
                public_url: gateway_public.clone(),
                console_url: settings
                    .console_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{console_addr}")),
                revealing: Arc::default(),
            };
            let mut on_stop = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let serve = axum::serve(
                    no_delay(listener),
                    crate::gateway::router(gw)
                        .into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(async move {
                    let _ = on_stop.wait_for(|s| *s).await;
                });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "the gateway listener failed");
                }
            }));
        }
        tasks.push(tokio::spawn(crate::notify::deliver(
            service.clone(),
            settings.delivery,
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(flush_pages(service.clone(), stopped.clone())));
        tasks.push(tokio::spawn(refresh_keys(
            service.clone(),
            assertions.clone(),
            stopped.clone(),
        )));
        let reaper = tokio::spawn(reap(service.clone(), stopped));
        tasks.push(reaper);
        Ok(Self {
            console_addr,
            stop,
            tasks,
            gateway_addr,
            store,
            service,
            assertions,
        })
    }

    /// The gateway listener's bound address, if it runs.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway_addr
    }

    /// The console listener's bound address.
    pub fn console_addr(&self) -> SocketAddr {
        self.console_addr
    }

    /// What signs the gateway's assertions (its key id, for tests and operators).
    pub fn assertions(&self) -> &Arc<crate::assertion::AssertionSigner> {
        &self.assertions
    }

    /// The store, for tests that need to break it on purpose.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The service layer, for tests and the demo.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Stops serving, waits for in-flight requests, then closes the store (which signs a
    /// final tree head).
    pub async fn stop(self) -> Result<(), actas_store::StoreError> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = self.service.flush_unclassified().await {
            tracing::warn!(error = %e, "counts of unclassified fields were lost at shutdown");
        }
        if let Err(e) = self.service.flush_pages().await {
            tracing::warn!(error = %e, "the hashes of the last pages served were lost at shutdown");
        }
        self.store.close().await
    }
}

/// How often the pages the gateway served are recorded (their hashes, one event per
/// session, and their copies).
pub const PAGES_EVERY: Duration = Duration::from_secs(1);

async fn flush_pages(service: Service, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(PAGES_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = service.flush_pages().await {
                    tracing::warn!(error = %e, "served pages could not be recorded yet; they wait for the next try");
                }
            }
            _ = stopped.changed() => break,
        }
    }
}

/// Picks up an assertion key another instance put in place.
async fn refresh_keys(
    service: Service,
    signer: Arc<crate::assertion::AssertionSigner>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(crate::service::keys::KEY_REFRESH);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = service.refresh_assertion_keys(&signer).await {
                    tracing::warn!(error = %e, "could not check for a replaced assertion key");
                }
            }
            _ = stopped.changed() => break,
        }
    }
}

async fn reap(service: Service, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    let mut pruned: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Page copies past the policy's retention go, once an hour.
                if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                    pruned = Some(tokio::time::Instant::now());
                    match service.prune_page_copies(actas_core::Timestamp::now()).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(deleted = n, "deleted page copies past their retention"),
                        Err(e) => tracing::warn!(error = %e, "old page copies could not be deleted yet"),
                    }
                }
                match service.reap().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(ended = n, "ended sessions past their limits"),
                    Err(e) => tracing::error!(error = %e, "the session reaper failed"),
                }
                if let Err(e) = service.flush_unclassified().await {
                    tracing::warn!(error = %e, "counts of unclassified fields could not be saved yet");
                }
            }
            _ = stopped.changed() => break,
        }
    }
}

/// Accepted connections get `TCP_NODELAY`. Responses go out in several writes (headers,
/// then the rewritten page piece by piece); with Nagle's algorithm on, a small last piece
/// waits for the browser's delayed acknowledgement, tens of milliseconds per page at light
/// load (the gateway load benchmark showed a p99 of 158 ms before this).
pub(crate) fn no_delay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set(tcp: &mut tokio::net::TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    }
    listener.tap_io(set as fn(&mut tokio::net::TcpStream))
}
