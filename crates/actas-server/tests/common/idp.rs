//! The identity provider the sign-in tests run against: the certified `oidc-provider`
//! package on Node (`tests/oidc/provider.mjs`, installed by `cargo xtask test`), started
//! on port 0 for each test. Its login form signs in whoever the test says; its
//! `/__test/` hooks make it misbehave and rotate its key.

use serde_json::{Value, json};
use std::path::Path;

pub const CLIENT_SECRET: &str = "a-test-client-secret-for-actas";
pub const SCIM_TOKEN: &str = "a-scim-token-the-provider-pushes-users-with";

/// The identity provider, killed when dropped.
pub struct Idp {
    /// Its issuer URL.
    pub issuer: String,
    http: reqwest::Client,
    child: std::process::Child,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    pub async fn start() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "the test identity provider (npm package oidc-provider) is not installed in {}: run `cargo xtask test`, which installs it",
            dir.display()
        );
        // Node now and then stalls before it listens on a loaded machine: a start that
        // says nothing within 20 s is killed (which also ends the read waiting on it) and
        // tried again, so a stall can neither hang the test nor fail it.
        let mut attempt = 0;
        let (child, line) = loop {
            attempt += 1;
            let mut child = std::process::Command::new("node")
                .arg("provider.mjs")
                .current_dir(&dir)
                .env("OIDC_CLIENT_ID", "actas")
                .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("node runs provider.mjs");
            let stdout = child.stdout.take().expect("stdout");
            let first = tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
                    .map(|_| line)
            });
            match tokio::time::timeout(std::time::Duration::from_secs(20), first).await {
                Ok(line) => break (child, line.expect("join").expect("read")),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    assert!(
                        attempt < 3,
                        "the identity provider did not start in 3 tries of 20 s"
                    );
                }
            }
        };
        let line = line.trim();
        let issuer = line
            .strip_prefix("issuer ")
            .expect("an `issuer …` line")
            .to_owned();
        Self {
            issuer,
            http: reqwest::Client::new(),
            child,
        }
    }

    pub async fn hook(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("{}/__test/{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("hook");
        assert_eq!(
            r.status(),
            204,
            "{path}: {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// The next ID token has these claims changed (`null` removes one).
    pub async fn tamper(&self, claims: Value) {
        self.hook("tamper", claims).await;
    }

    /// The provider signs with a new key from now on.
    pub async fn rotate(&self) {
        self.hook("rotate", json!({})).await;
    }
}

impl Idp {
    /// Points the data directory at `root` to this provider: `[auth]` with
    /// `local_passwords`, `[auth.oidc]` (client `actas`, named "Test IdP") with `oidc`
    /// added, and `[auth.scim]` with [`SCIM_TOKEN`].
    pub fn configure(&self, root: &Path, local_passwords: bool, oidc: &str) {
        std::fs::write(root.join("oidc-client.secret"), CLIENT_SECRET).expect("secret");
        std::fs::write(root.join("scim.token"), SCIM_TOKEN).expect("token");
        let config = root.join("actas.toml");
        let mut text = std::fs::read_to_string(&config).expect("config");
        text.push_str(&format!(
            "\n[auth]\nlocal_passwords = {local_passwords}\n\n[auth.oidc]\nname = \"Test IdP\"\nissuer = \"{}\"\nclient_id = \"actas\"\nclient_secret_file = \"oidc-client.secret\"\nscopes = [\"email\", \"profile\", \"groups\"]\n{oidc}\n\n[auth.scim]\ntoken_file = \"scim.token\"\n",
            self.issuer
        ));
        std::fs::write(&config, text).expect("write config");
    }
}
