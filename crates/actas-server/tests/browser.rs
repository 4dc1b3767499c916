//! The whole product in a real browser: `actas demo` started in the test, headless
//! Chromium driven through ChromeDriver (fantoccini). `cargo xtask test` installs both;
//! without them these tests fail, saying so — they never skip.
//!
//! Each test saves screenshots under `target/e2e/`; a failure names the page and what was
//! missing.

mod common;

use actas_server::demo::{Demo, DemoSettings, STAFF_PASSWORD};
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The demo, with the console on 127.0.0.1 and the gateway linked as `localhost`: two
/// different sites, so the hand-off is cross-site as it is in production.
async fn demo() -> (Demo, String, String, String) {
    // The gateway's port is chosen before it is bound (its URL names it), so another test
    // can take it in between: then try another.
    let mut attempt = 0;
    let (d, gateway_port) = loop {
        attempt += 1;
        let gateway_port = free_port();
        let started = Demo::start(DemoSettings {
            console_addr: ([127, 0, 0, 1], 0).into(),
            gateway_addr: ([127, 0, 0, 1], gateway_port).into(),
            portal_addr: ([127, 0, 0, 1], 0).into(),
            gateway_url: Some(format!("http://localhost:{gateway_port}")),
            database_url: common::demo_database().await,
            ..DemoSettings::default()
        })
        .await;
        match started {
            Ok(d) => break (d, gateway_port),
            Err(e) if attempt < 5 && e.to_string().contains("could not listen") => continue,
            Err(e) => panic!("the demo starts: {e:?}"),
        }
    };
    let console = format!("http://{}", d.app.console_addr());
    let gateway = format!("http://localhost:{gateway_port}");
    let portal = format!("http://{}", d.portal_addr);
    (d, console, gateway, portal)
}

/// A view-only session for Sarah on Acme Co, started through the service (approved by
/// policy); its single-use way in.
async fn sarahs_view_session(
    d: &Demo,
    ticket: &str,
    reason: &str,
) -> actas_server::service::HandoffToken {
    let s = d.app.service();
    let sarah = s
        .store()
        .staff_by_email(&actas_core::staff::Email::parse("sarah@northwind.example").expect("e"))
        .await
        .expect("r")
        .expect("sarah");
    let request = s
        .create_request(
            &sarah,
            actas_server::service::RequestInput {
                account: "acme".into(),
                ticket: ticket.into(),
                reason: reason.into(),
                capabilities: vec![],
                minutes: None,
                mode: Some("read-only".into()),
                for_session: None,
            },
        )
        .await
        .expect("request");
    s.start_session(&sarah, request.id, actas_core::Timestamp::now())
        .await
        .expect("start")
        .1
}

/// The demo's ledger events, oldest first.
async fn ledger(d: &Demo) -> Vec<actas_store::RecordedEvent> {
    d.app
        .service()
        .store()
        .events(&actas_store::EventFilter::default(), 0, 10_000)
        .await
        .expect("events")
}

/// Whether an event in the demo's ledger reads exactly `summary`.
async fn ledger_says(d: &Demo, summary: &str) -> bool {
    ledger(d).await.iter().any(|e| e.body.summary == summary)
}

/// One headless Chromium with its own profile, driven by its own ChromeDriver.
struct Browser {
    client: Client,
    driver: Child,
    test: &'static str,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(test: &'static str, width: u32, height: u32) -> Self {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "Chromium and ChromeDriver are needed at {CHROMIUM} and {CHROMEDRIVER}; `cargo xtask test` installs them (apt-get install chromium chromium-driver)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ChromeDriver starts");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
                "prefs": {
                    "download.default_directory": profile.path().join("downloads").display().to_string(),
                    "download.prompt_for_download": false,
                }
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut client = None;
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let client = client.expect("ChromeDriver accepted a session within 10 s");
        Self {
            client,
            driver,
            test,
            _profile: profile,
        }
    }

    /// Saves a screenshot as `target/e2e/<test>-<label>.png`.
    async fn shot(&self, label: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/e2e");
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{}-{label}.png", self.test)), png);
        }
    }

    async fn go(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{}: could not open {url}: {e}", self.test));
    }

    async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// Waits up to 10 s for `wanted` to appear (pages load after clicks), then fails with
    /// the page and what was missing.
    async fn expect_text(&self, page: &str, wanted: &str) {
        self.expect_text_within(page, wanted, Duration::from_secs(10))
            .await
    }

    /// As [`Self::expect_text`], waiting up to `limit`.
    async fn expect_text_within(&self, page: &str, wanted: &str, limit: Duration) {
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Ok(body) = self.client.find(Locator::Css("body")).await {
                text = body.text().await.unwrap_or_default();
                if text.contains(wanted) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.shot(&format!("missing-{}", page.replace(' ', "-")))
            .await;
        panic!(
            "{}: on {page}, \"{wanted}\" is missing. The page says:\n{text}",
            self.test
        );
    }

    async fn fill(&self, css: &str, value: &str) {
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{}: no {css}: {e}", self.test));
        el.clear().await.expect("clear");
        el.send_keys(value).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{}: no {css} to click: {e}", self.test))
            .click()
            .await
            .expect("click");
    }

    /// Signs in to the demo portal as Acme Co, and waits until it is signed in (else the
    /// next page asked for would be the portal's sign-in).
    async fn sign_in_portal_as_acme(&self, portal: &str) {
        self.go(&format!("{portal}/")).await;
        self.fill("input[name=id]", "acme").await;
        self.fill("input[name=password]", "acme-demo").await;
        self.click("form button").await;
        self.expect_text("the portal after signing in", "Welcome, Acme Co")
            .await;
    }

    async fn sign_in_console(&self, console: &str, email: &str) {
        self.go(&format!("{console}/sign-in")).await;
        self.fill("input[name=email]", email).await;
        self.fill("input[name=password]", STAFF_PASSWORD).await;
        self.click("form[action='/sign-in'] button").await;
        self.expect_text("the console after signing in", "Sign out")
            .await;
    }

    /// The banner is shown, inside the viewport, on top, naming the customer and agent.
    async fn expect_banner(&self, page: &str) -> String {
        self.expect_banner_with(page, &["Acme Co", "Sarah Lee", "End session"])
            .await
    }

    /// As [`Self::expect_banner`], with the words it must show.
    async fn expect_banner_with(&self, page: &str, words: &[&str]) -> String {
        let banner = match self.client.find(Locator::Id("actas-banner")).await {
            Ok(b) => b,
            Err(_) => {
                self.shot(&format!("no-banner-{page}")).await;
                panic!("{}: no banner on {page}", self.test);
            }
        };
        assert!(
            banner.is_displayed().await.expect("displayed"),
            "{}: banner hidden on {page}",
            self.test
        );
        let (x, y, w, h) = banner.rectangle().await.expect("rect");
        let viewport = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .expect("viewport");
        let vw = viewport[0].as_f64().unwrap_or(0.0);
        let vh = viewport[1].as_f64().unwrap_or(0.0);
        assert!(
            x >= 0.0 && y >= 0.0 && w > 0.0 && h > 0.0 && x + w <= vw + 1.0 && y + h <= vh,
            "{}: the banner on {page} is not inside the viewport ({x},{y} {w}×{h} in {vw}×{vh})",
            self.test
        );
        // Nothing of the page's is drawn over it: the element at its middle is its own.
        let on_top = self
            .client
            .execute(
                "var b = document.getElementById('actas-banner').getBoundingClientRect();\
                 var e = document.elementFromPoint(b.left + 10, b.top + b.height / 2);\
                 return !!e && !!e.closest('#actas-banner');",
                vec![],
            )
            .await
            .expect("on top");
        assert_eq!(
            on_top,
            serde_json::json!(true),
            "{}: something covers the banner on {page}",
            self.test
        );
        let text = banner.text().await.expect("banner text");
        for wanted in words {
            assert!(
                text.contains(wanted),
                "{}: the banner on {page} lacks \"{wanted}\": {text}",
                self.test
            );
        }
        text
    }

    /// Waits up to 10 s for a download named `name` and returns its path.
    async fn downloaded(&self, name: &str) -> PathBuf {
        let path = self._profile.path().join("downloads").join(name);
        for _ in 0..100 {
            if path.exists()
                && std::fs::metadata(&path)
                    .map(|m| m.len() > 0)
                    .unwrap_or(false)
            {
                return path;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.shot("no-download").await;
        panic!("{}: {name} was not downloaded", self.test);
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_off_the_allow_list_sees_no_act_as_control() {
    let (d, console, _, _) = demo().await;
    let b = Browser::open("off-list", 1280, 900).await;
    b.sign_in_console(&console, "ola@northwind.example").await;
    b.go(&format!("{console}/accounts/acme")).await;
    b.expect_text("Acme Co's account page", "Acme Co").await;
    b.shot("account").await;
    let html = b.source().await;
    assert!(
        !html.contains("Act as this customer") && !html.contains("Request access"),
        "off-list: the account page offers acting as the customer"
    );
    b.close().await;
    d.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_support_session_from_request_to_end_as_people_see_it() {
    let (d, console, gateway, portal) = demo().await;
    let agent = Browser::open("session-agent", 1280, 900).await;
    let lead = Browser::open("session-lead", 1280, 900).await;

    // The agent asks for a medium-risk scope.
    agent
        .sign_in_console(&console, "sarah@northwind.example")
        .await;
    agent.go(&format!("{console}/accounts/acme")).await;
    agent.fill("input[name=ticket]", "#4821").await;
    agent
        .fill(
            "textarea[name=reason]",
            "Customer asked to correct the VAT rate on invoices",
        )
        .await;
    agent.click("input[value=edit_settings]").await;
    agent.click("input[value=edit_profile]").await;
    agent
        .client
        .find(Locator::Css("select[name=mode]"))
        .await
        .expect("mode")
        .select_by_value("live")
        .await
        .expect("live");
    agent
        .click("form[action='/accounts/acme/requests'] button")
        .await;
    agent
        .expect_text("the request page", "Request to act as Acme Co")
        .await;
    agent
        .expect_text("the request page", "Waiting for a lead to decide")
        .await;
    let request_url = agent.client.current_url().await.expect("url").to_string();
    agent.shot("requested").await;

    // The lead approves a narrower scope from their own session.
    lead.sign_in_console(&console, "lee@northwind.example")
        .await;
    lead.go(&format!("{console}/queue")).await;
    lead.expect_text("the approval queue", "Sarah Lee").await;
    lead.click("input[name=capabilities][value=edit_profile]")
        .await;
    lead.shot("approving").await;
    lead.click("form[action$='/approve'] button").await;
    lead.expect_text("the queue after approving", "Nothing is waiting")
        .await;
    lead.close().await;

    // The agent starts the session and opens the product through the gateway.
    agent.go(&request_url).await;
    agent.expect_text("the approved request", "Approved").await;
    // The password is asked for again only if the last sign-in is not recent.
    if let Ok(p) = agent
        .client
        .find(Locator::Css("input[name=password]"))
        .await
    {
        p.send_keys(STAFF_PASSWORD).await.expect("password");
    }
    agent.click("form[action$='/start'] button").await;
    agent
        .expect_text("the session page", "Acting as Acme Co")
        .await;
    let link = agent
        .client
        .find(Locator::Id("open-gateway"))
        .await
        .expect("a link into the gateway");
    let href = link.attr("href").await.expect("href").expect("href");
    assert!(href.starts_with(&gateway), "{href}");
    link.click().await.expect("open");
    agent
        .expect_text(
            "the portal's overview through the gateway",
            "Welcome, Acme Co",
        )
        .await;
    // The portal's own style sheet and script are assets it marks public, so they pass;
    // the script's read of the portal's API is recorded and masked like any other.
    agent
        .expect_text(
            "the overview's summary, filled by the portal's script",
            "Statements go to s•••@acme.com",
        )
        .await;
    let styled = agent
        .client
        .execute(
            "return [...document.styleSheets].some(s => s.href && s.href.endsWith('/static/portal.css') && s.cssRules.length > 0);",
            vec![],
        )
        .await
        .expect("style sheets");
    assert_eq!(
        styled,
        serde_json::json!(true),
        "the portal's style sheet loaded"
    );

    // The banner on six pages; its countdown moves.
    let first = agent.expect_banner("the overview").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let later = agent.expect_banner("the overview, later").await;
    assert_ne!(first, later, "the countdown moves");
    for (path, name) in [
        ("/profile", "profile"),
        ("/address", "address"),
        ("/settings", "settings"),
        ("/loans", "loans"),
        ("/payments", "payments"),
        ("/security", "security"),
    ] {
        agent.go(&format!("{gateway}{path}")).await;
        agent.expect_banner(name).await;
        agent.shot(name).await;
        let html = agent.source().await;
        for secret in [
            "4111 1111 1111 4243",
            "4111111111114243",
            "QQ 01 07 13 C",
            "pt_live_acme",
            "acme-rc-",
            "sarah@acme.com",
        ] {
            assert!(
                !html.contains(secret),
                "{secret} is in the source of {name}"
            );
        }
    }
    agent.go(&format!("{gateway}/payments")).await;
    agent.expect_text("payments", "•••• 4243").await;

    // A second tab carries the banner too.
    agent.client.new_window(true).await.expect("tab");
    let tabs = agent.client.windows().await.expect("tabs");
    agent
        .client
        .switch_to_window(tabs[tabs.len() - 1].clone())
        .await
        .expect("switch");
    agent.go(&format!("{gateway}/loans")).await;
    agent.expect_banner("loans in a second tab").await;
    agent.client.close_window().await.expect("close tab");
    agent
        .client
        .switch_to_window(tabs[0].clone())
        .await
        .expect("back");

    // The export is refused with an explanation that still has the banner.
    agent.go(&format!("{gateway}/loans")).await;
    agent.click("#export").await;
    agent
        .expect_text("the refused export", "Blocked by actas")
        .await;
    agent.expect_banner("the refused export").await;
    agent.shot("export-refused").await;

    // An out-of-scope form is refused and recorded.
    agent.go(&format!("{gateway}/profile")).await;
    agent.fill("input[name=name]", "Acme Company").await;
    agent.click("form[action='/profile'] button").await;
    agent
        .expect_text("the refused profile change", "Blocked by actas")
        .await;
    agent.expect_banner("the refused profile change").await;

    // An in-scope change goes through.
    agent.go(&format!("{gateway}/settings")).await;
    agent
        .client
        .find(Locator::Css("select[name=tax_rate]"))
        .await
        .expect("tax rate")
        .select_by_value("10%")
        .await
        .expect("10%");
    agent.click("form[action='/settings/tax'] button").await;
    agent
        .expect_text("the settings after saving", "Saved.")
        .await;

    // The portal names its own origin in <base href>; through the gateway it names the
    // gateway, so the banner's End form (a relative address) still reaches the gateway.
    let base = agent
        .client
        .execute(
            "return [document.querySelector('base') && document.querySelector('base').getAttribute('href'), document.querySelector('#actas-banner form').action];",
            vec![],
        )
        .await
        .expect("base");
    assert_eq!(base[0], serde_json::json!("/"), "{base}");
    assert!(
        base[1].as_str().is_some_and(|a| a.starts_with(&gateway)),
        "the End form posts to the gateway: {base}"
    );

    // End from the banner; the next request through the gateway is refused.
    agent.click("#actas-banner button").await;
    agent
        .expect_text("the end notice", "Support session ended")
        .await;
    agent.go(&format!("{gateway}/")).await;
    agent
        .expect_text("the gateway after the end", "No support session")
        .await;
    agent.shot("after-end").await;
    // Back after End shows no customer data: the pages were never cacheable.
    agent.client.back().await.expect("back");
    agent.client.back().await.expect("back");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = agent.client.current_url().await.expect("url");
    assert!(
        url.path().starts_with("/settings"),
        "back on the settings page: {url}"
    );
    let after_back = agent.source().await;
    assert!(
        !after_back.contains("tax_rate") && !after_back.contains("4243"),
        "Back after End shows a page the session served: {after_back}"
    );

    // The console's timeline reads the change in plain language.
    agent.go(&format!("{console}/activity")).await;
    let _ = agent;
    let agent_console = Browser::open("session-timeline", 1280, 900).await;
    agent_console
        .sign_in_console(&console, "lee@northwind.example")
        .await;
    agent_console.go(&format!("{console}/activity")).await;
    agent_console
        .expect_text(
            "the activity log",
            "Sarah Lee, acting as Acme Co, changed the tax rate from 20% to 10%",
        )
        .await;
    agent_console
        .expect_text("the activity log", "was blocked from POST /profile")
        .await;
    agent_console.shot("timeline").await;
    agent_console.close().await;

    // The customer sees the session under Account access.
    agent.go(&format!("{portal}/sign-in")).await;
    agent.fill("input[name=id]", "acme").await;
    agent.fill("input[name=password]", "acme-demo").await;
    agent.click("form[action='/sign-in'] button").await;
    agent
        .expect_text("the portal after signing in", "Welcome, Acme Co")
        .await;
    agent.go(&format!("{portal}/access")).await;
    for wanted in [
        "Sarah Lee",
        "#4821",
        "Customer asked to correct the VAT rate on invoices",
        "changed the tax rate from 20% to 10%",
    ] {
        agent
            .expect_text("the customer's account access page", wanted)
            .await;
    }
    agent.shot("customer-access").await;
    agent.click("#extract").await;
    let file = agent.downloaded("audit-extract-acme.json").await;
    let out = Command::new(env!("CARGO_BIN_EXE_actas"))
        .args(["--data", "/nonexistent/actas", "audit", "verify-extract"])
        .arg(&file)
        .output()
        .expect("run actas");
    assert!(
        out.status.success(),
        "the downloaded extract does not verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Complete: all"));
    // The portal names the ledger key and links to actas's verifier page.
    let key_id = d.app.service().ledger_key_id();
    agent
        .expect_text("the customer's account access page", &key_id)
        .await;
    agent.click("#verify").await;
    agent
        .expect_text("the verifier page", "Check your audit extract")
        .await;
    agent
        .client
        .find(Locator::Css("#file"))
        .await
        .expect("file input")
        .send_keys(&file.display().to_string())
        .await
        .expect("choose the file");
    agent
        .expect_text("the verifier page", "Complete: all")
        .await;
    agent.close().await;
    d.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_banner_keeps_to_itself_and_approvals_are_usable() {
    let (d, console, _, _) = demo().await;
    let s = d.app.service();
    let sarah = s
        .store()
        .staff_by_email(&actas_core::staff::Email::parse("sarah@northwind.example").expect("e"))
        .await
        .expect("r")
        .expect("sarah");
    let request = s
        .create_request(
            &sarah,
            actas_server::service::RequestInput {
                account: "acme".into(),
                ticket: "#5001".into(),
                reason: "Customer asked to correct the shipping address".into(),
                capabilities: vec!["edit_profile".into()],
                minutes: None,
                mode: Some("live".into()),
                for_session: None,
            },
        )
        .await
        .expect("request");

    // The lead approves on a phone.
    let phone = Browser::open("phone", 390, 844).await;
    phone.client.set_window_size(390, 844).await.expect("size");
    phone
        .sign_in_console(&console, "lee@northwind.example")
        .await;
    phone.go(&format!("{console}/queue")).await;
    phone
        .expect_text("the approval queue on a phone", "Sarah Lee")
        .await;
    let approve = phone
        .client
        .find(Locator::Css("form[action$='/approve'] button"))
        .await
        .expect("approve button");
    assert!(
        approve.is_displayed().await.expect("shown"),
        "the Approve button is visible on a phone"
    );
    phone.shot("queue").await;
    approve.click().await.expect("approve");
    phone
        .expect_text("the queue after approving on a phone", "Nothing is waiting")
        .await;
    phone.close().await;

    // The agent, on a phone too, inside the session.
    let (_, token) = s
        .start_session(&sarah, request.id, actas_core::Timestamp::now())
        .await
        .expect("start");
    let agent = Browser::open("phone-agent", 390, 844).await;
    let gateway = format!("http://{}", d.app.gateway_addr().expect("gateway"));
    agent
        .go(&format!("{gateway}/__actas/enter?token={}", token.expose()))
        .await;
    agent
        .expect_text("the overview on a phone", "Welcome, Acme Co")
        .await;
    // On a phone the banner keeps the customer, the time left and the End button.
    agent
        .expect_banner_with(
            "the overview on a phone",
            &["Acme Co", "left", "End session"],
        )
        .await;
    // The page's own controls are not under the banner.
    let clear = agent
        .client
        .execute(
            "var b = document.getElementById('actas-banner').getBoundingClientRect();\
             var n = document.querySelector('header.site').getBoundingClientRect();\
             return n.top >= b.bottom - 1;",
            vec![],
        )
        .await
        .expect("layout");
    agent.shot("overview").await;
    assert_eq!(
        clear,
        serde_json::json!(true),
        "phone: the banner covers the portal's navigation"
    );
    agent.close().await;
    d.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensitive_customer_gives_a_code_once_and_a_timed_out_page_says_so() {
    // The example policy with one-minute sessions, so the time limit arrives in the test.
    let policy = actas_server::demo::EXAMPLE_POLICY
        .replace("hard_limit_minutes = 30", "hard_limit_minutes = 1")
        .replace("idle_limit_minutes = 15", "idle_limit_minutes = 1")
        .replace("default_minutes = 15", "default_minutes = 1");
    let gateway_port = free_port();
    let d = Demo::start(DemoSettings {
        console_addr: ([127, 0, 0, 1], 0).into(),
        gateway_addr: ([127, 0, 0, 1], gateway_port).into(),
        portal_addr: ([127, 0, 0, 1], 0).into(),
        gateway_url: Some(format!("http://localhost:{gateway_port}")),
        policy: Some(policy),
        database_url: common::demo_database().await,
        ..DemoSettings::default()
    })
    .await
    .expect("the demo starts");
    let console = format!("http://{}", d.app.console_addr());
    let portal = format!("http://{}", d.portal_addr);
    let s = d.app.service();
    let staff = |email: &'static str| async move {
        s.store()
            .staff_by_email(&actas_core::staff::Email::parse(email).expect("e"))
            .await
            .expect("r")
            .expect("staff")
    };
    let sarah = staff("sarah@northwind.example").await;
    let lee = staff("lee@northwind.example").await;
    let ask = || actas_server::service::RequestInput {
        account: "globex".into(),
        ticket: "#6001".into(),
        reason: "Customer cannot find their latest statement".into(),
        capabilities: vec![],
        minutes: Some(1),
        mode: Some("read-only".into()),
        for_session: None,
    };
    let request = s.create_request(&sarah, ask()).await.expect("request");
    s.approve_request(&lee, request.id, actas_server::service::Approval::default())
        .await
        .expect("a lead approves: the account is sensitive");

    // The customer makes a code in the portal.
    let customer = Browser::open("code-customer", 1280, 900).await;
    customer.go(&format!("{portal}/sign-in")).await;
    customer.fill("input[name=id]", "globex").await;
    customer.fill("input[name=password]", "globex-demo").await;
    customer.click("form[action='/sign-in'] button").await;
    customer
        .expect_text("the portal after signing in", "Welcome, Globex Ltd")
        .await;
    customer.go(&format!("{portal}/access")).await;
    customer.click("#make-code").await;
    customer
        .expect_text("the account access page", "Your code")
        .await;
    let code = customer
        .client
        .find(Locator::Id("code"))
        .await
        .expect("the code")
        .text()
        .await
        .expect("text");
    customer.shot("code").await;
    customer.close().await;

    // The agent can't start without it, enters it, starts, and is in.
    let agent = Browser::open("code-agent", 1280, 900).await;
    agent
        .sign_in_console(&console, "sarah@northwind.example")
        .await;
    agent
        .go(&format!("{console}/requests/{}", request.id))
        .await;
    agent
        .expect_text("the request page", "confirmation code")
        .await;
    let start_without_code = agent
        .client
        .find(Locator::Css("form[action$='/start'] button"))
        .await;
    assert!(
        start_without_code.is_err(),
        "no Start button before the code"
    );
    agent.fill("input[name=code]", &code).await;
    agent.click("form[action$='/code'] button").await;
    agent
        .expect_text("the request after the code", "Start support session")
        .await;
    agent.click("form[action$='/start'] button").await;
    agent
        .expect_text("the session page", "Acting as Globex Ltd")
        .await;
    agent.click("#open-gateway").await;
    agent
        .expect_text("the portal through the gateway", "Welcome, Globex Ltd")
        .await;
    agent
        .expect_banner_with("the overview", &["Globex Ltd", "Sarah Lee", "End session"])
        .await;

    // The code works once only.
    let second = s
        .create_request(&sarah, ask())
        .await
        .expect("a second request");
    s.approve_request(&lee, second.id, actas_server::service::Approval::default())
        .await
        .expect("approved");
    assert!(
        s.enter_code(&sarah, second.id, &code).await.is_err(),
        "a used code is refused"
    );

    // At the time limit the next poll replaces the page with a notice.
    agent
        .expect_text_within(
            "the page at the time limit",
            "This support session has ended",
            Duration::from_secs(90),
        )
        .await;
    agent.shot("timed-out").await;
    agent.close().await;
    d.stop().await.expect("stop");
}

#[tokio::test]
async fn saving_the_signed_contact_form_shows_the_exact_change_and_sends_nothing_until_confirmed() {
    let (d, _console, gateway, portal) = demo().await;
    // Sarah may correct contact details (medium risk: Lee approves).
    let s = d.app.service();
    let staff = |email: &str| {
        let email = actas_core::staff::Email::parse(email).expect("email");
        async move {
            s.store()
                .staff_by_email(&email)
                .await
                .expect("read")
                .expect("seeded")
        }
    };
    let (sarah, lee) = (
        staff("sarah@northwind.example").await,
        staff("lee@northwind.example").await,
    );
    let r = s
        .create_request(
            &sarah,
            actas_server::service::RequestInput {
                account: "acme".into(),
                ticket: "#4821".into(),
                reason: "Correct the business name the customer sent us".into(),
                capabilities: vec!["edit_profile".into()],
                minutes: None,
                mode: Some("live".into()),
                for_session: None,
            },
        )
        .await
        .expect("request");
    s.approve_request(&lee, r.id, actas_server::service::Approval::default())
        .await
        .expect("approve");
    let (_, token) = s
        .start_session(&sarah, r.id, actas_core::Timestamp::now())
        .await
        .expect("start");
    let agent = Browser::open("masked-form", 1280, 900).await;
    agent
        .go(&format!("{gateway}/__actas/enter?token={}", token.expose()))
        .await;
    agent.expect_text("the overview", "Welcome, Acme Co").await;
    agent.go(&format!("{gateway}/profile")).await;
    let email = agent
        .client
        .find(Locator::Css("input[name=email]"))
        .await
        .expect("the email field");
    assert_eq!(
        email.attr("readonly").await.expect("attr").as_deref(),
        Some("true"),
        "a masked field can't be edited"
    );
    assert_eq!(
        email.prop("value").await.expect("value").as_deref(),
        Some("s•••@acme.com")
    );
    agent.shot("profile-masked").await;
    agent.fill("input[name=name]", "Acme Company").await;
    agent.click("form[action='/profile'] button").await;
    // The contact details are a signed action: held and shown, not sent. The masked
    // fields went back as their placeholders and are left out (the route takes partial
    // forms), so only the name changes.
    agent
        .expect_text("the held save", "Confirm this change")
        .await;
    let page = agent.source().await;
    assert!(
        page.contains("<td>name</td><td>Acme Co</td><td>Acme Company</td>"),
        "the change from and to: {page}"
    );
    assert!(
        !page.contains("<td>email</td>") && !page.contains("<td>phone</td>"),
        "masked fields left out are not changes: {page}"
    );
    agent.expect_banner("the held save").await;
    agent.shot("profile-held").await;
    // The customer's own view: nothing changed.
    let customer = Browser::open("masked-form-customer", 1280, 900).await;
    customer.sign_in_portal_as_acme(&portal).await;
    customer.go(&format!("{portal}/profile")).await;
    let html = customer.source().await;
    assert!(
        html.contains(r#"value="Acme Co""#) && html.contains("@acme.com") && !html.contains("•••"),
        "the customer's details are as they were: {html}"
    );
    customer.close().await;
    agent.close().await;
    d.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_starts_at_its_own_home_and_an_agent_gets_back_into_a_live_session() {
    let (d, console, gateway, portal) = demo().await;
    let agent = Browser::open("home-agent", 1280, 900).await;

    // The agent's home: their requests, and the way to start one.
    agent
        .sign_in_console(&console, "sarah@northwind.example")
        .await;
    agent
        .expect_text("the agent's home", "Hello, Sarah Lee")
        .await;
    agent.expect_text("the agent's home", "Your requests").await;
    // A view-only request is approved by policy: straight to a session.
    agent.go(&format!("{console}/accounts/acme")).await;
    agent.fill("input[name=ticket]", "#5100").await;
    agent
        .fill(
            "textarea[name=reason]",
            "Customer can't find last month's invoice",
        )
        .await;
    agent
        .click("form[action='/accounts/acme/requests'] button")
        .await;
    agent.expect_text("the request page", "Approved").await;
    if let Ok(p) = agent
        .client
        .find(Locator::Css("input[name=password]"))
        .await
    {
        p.send_keys(STAFF_PASSWORD).await.expect("password");
    }
    agent.click("form[action$='/start'] button").await;
    agent
        .expect_text("the session page", "Acting as Acme Co")
        .await;

    // They leave the session's page before opening the account: the home says the
    // session runs and leads back to it, where a new link can be had.
    agent.go(&format!("{console}/")).await;
    agent
        .expect_text(
            "the home with a live session",
            "Your session on Acme Co is running",
        )
        .await;
    agent.shot("home-live-session").await;
    agent.click("section.live a[href='/session']").await;
    agent
        .expect_text("the session page again", "Get a new link")
        .await;
    if let Ok(p) = agent
        .client
        .find(Locator::Css("input[name=password]"))
        .await
    {
        p.send_keys(STAFF_PASSWORD).await.expect("password");
    }
    agent.click("#reissue").await;
    let link = agent
        .client
        .wait()
        .for_element(Locator::Id("open-gateway"))
        .await
        .expect("a new link into the same session");
    let href = link.attr("href").await.expect("href").expect("href");
    assert!(href.starts_with(&gateway), "{href}");
    link.click().await.expect("open");
    agent
        .expect_text("the portal through the re-issued link", "Welcome, Acme Co")
        .await;
    agent
        .expect_banner("the portal through the re-issued link")
        .await;
    // The same link does not work twice.
    agent.go(&href).await;
    agent
        .expect_text("a used link", "not valid, has expired or was already used")
        .await;

    // The lead's home: what waits for a decision.
    let lead = Browser::open("home-lead", 1280, 900).await;
    lead.sign_in_console(&console, "lee@northwind.example")
        .await;
    lead.expect_text("the lead's home", "Waiting for your decision")
        .await;
    lead.expect_text("the lead's home", "waiting for the customer's code")
        .await;
    lead.close().await;

    // The director's home: the allow-list.
    let director = Browser::open("home-director", 1280, 900).await;
    director
        .sign_in_console(&console, "dana@northwind.example")
        .await;
    director
        .expect_text("the director's home", "Who may act as customers")
        .await;
    director
        .expect_text("the director's home", "Sarah Lee")
        .await;
    director.close().await;

    // The auditor's home: the ledger and the latest activity; from the log, a click
    // leads to the session's timeline, with the re-issued link on it.
    let auditor = Browser::open("home-auditor", 1280, 900).await;
    auditor
        .sign_in_console(&console, "audrey@northwind.example")
        .await;
    auditor
        .expect_text("the auditor's home", "The ledger")
        .await;
    auditor
        .expect_text("the auditor's home", "events recorded")
        .await;
    auditor.go(&format!("{console}/activity")).await;
    auditor.click("a[href^='/sessions/']").await;
    auditor
        .expect_text("the timeline from the log", "Sarah Lee acting as Acme Co")
        .await;
    auditor
        .expect_text(
            "the timeline from the log",
            "was given a new link into their running session",
        )
        .await;
    auditor.shot("timeline-from-log").await;
    auditor.close().await;

    // The agent ends the session from the console with a note of what they did; the
    // customer reads it in their access history.
    agent.go(&format!("{console}/session")).await;
    agent
        .fill(
            "textarea[name=note]",
            "Found last month's invoice for the customer under Documents",
        )
        .await;
    agent.click("form[action$='/end'] button").await;
    agent
        .expect_text("the end, confirmed", "The session has ended.")
        .await;
    let customer = Browser::open("home-customer", 1280, 900).await;
    customer.sign_in_portal_as_acme(&portal).await;
    customer.go(&format!("{portal}/access")).await;
    customer
        .expect_text(
            "the customer's access history",
            "Found last month's invoice for the customer under Documents",
        )
        .await;
    customer
        .expect_text(
            "the customer's access history",
            "The staff member ended it.",
        )
        .await;
    customer.shot("access-history-with-note").await;
    customer.close().await;
    agent.close().await;
    d.stop().await.expect("stop");
}

impl Browser {
    /// The page fits the window's width: nothing scrolls sideways.
    async fn expect_no_sideways_scroll(&self, page: &str) {
        let width = self
            .client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .expect("widths");
        let (scroll, inner) = (width[0].as_u64(), width[1].as_u64());
        if scroll > inner || scroll > Some(390) {
            self.shot(&format!("wide-{}", page.replace(['/', '?', '=', '&'], "-")))
                .await;
            panic!("{page} is {scroll:?} px wide in a {inner:?} px window");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_phone_width_no_console_page_or_notice_scrolls_sideways() {
    let (d, console, gateway, _portal) = demo().await;
    let phone = Browser::open("phone-pages", 390, 844).await;
    phone.client.set_window_size(390, 844).await.expect("size");

    // A helpdesk link, opened before signing in: sign in, and the request form is there
    // with the ticket filled in.
    phone
        .go(&format!(
            "{console}/start?account=acme&ticket=%235200&reason=Customer+asked+about+a+late+fee"
        ))
        .await;
    phone.expect_text("the sign-in page", "Sign in").await;
    phone.expect_no_sideways_scroll("sign-in").await;
    phone
        .fill("input[name=email]", "sarah@northwind.example")
        .await;
    phone.fill("input[name=password]", STAFF_PASSWORD).await;
    phone.click("form[action='/sign-in'] button").await;
    phone
        .expect_text("the form from the helpdesk link", "Act as this customer")
        .await;
    let ticket = phone
        .client
        .find(Locator::Css("input[name=ticket]"))
        .await
        .expect("ticket")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(ticket.as_deref(), Some("#5200"));
    phone
        .expect_no_sideways_scroll("the helpdesk link's form")
        .await;
    phone.click("input[value=edit_profile]").await;
    phone
        .click("form[action='/accounts/acme/requests'] button")
        .await;
    phone
        .expect_text("the request", "Request to act as Acme Co")
        .await;
    let request = phone
        .client
        .current_url()
        .await
        .expect("url")
        .path()
        .to_owned();
    phone.expect_no_sideways_scroll("a request").await;

    // Every page each role opens, at 390 px.
    let pages: &[(&str, &[&str])] = &[
        (
            "sarah@northwind.example",
            &["/", "/accounts", "/accounts/acme", "/session", "/settings"],
        ),
        (
            "lee@northwind.example",
            &[
                "/",
                "/queue",
                "/reviews",
                "/reviews/week",
                "/activity",
                "/accounts/acme/audit",
            ],
        ),
        ("dana@northwind.example", &["/", "/allow-list"]),
        ("audrey@northwind.example", &["/", "/activity"]),
    ];
    for (who, paths) in pages {
        let b = Browser::open("phone-role", 390, 844).await;
        b.client.set_window_size(390, 844).await.expect("size");
        b.sign_in_console(&console, who).await;
        for path in *paths {
            b.go(&format!("{console}{path}")).await;
            b.expect_text(path, "Sign out").await;
            b.expect_no_sideways_scroll(&format!("{who} {path}")).await;
        }
        if who.starts_with("lee") {
            b.go(&format!("{console}{request}")).await;
            b.expect_no_sideways_scroll("a request, as the lead").await;
            // A refusal in the console, too.
            b.go(&format!("{console}/allow-list")).await;
            b.expect_text("a refusal", "Not for your role").await;
            b.expect_no_sideways_scroll("a console refusal").await;
        }
        b.close().await;
    }

    // The gateway's notices: outside a session, and a refusal under the banner.
    phone.go(&format!("{gateway}/")).await;
    phone
        .expect_no_sideways_scroll("the gateway without a session")
        .await;
    let token = sarahs_view_session(&d, "#5201", "Customer asked to check the invoices").await;
    phone
        .go(&format!("{gateway}/__actas/enter?token={}", token.expose()))
        .await;
    // On a phone the banner keeps the customer, the time left and End in sight; who,
    // which ticket and what scope are one tap away.
    let banner = phone
        .expect_banner_with(
            "the portal on a phone",
            &["Acting as Acme Co", "left", "End session"],
        )
        .await;
    assert!(!banner.contains("#5201"), "{banner}");
    phone.click("#actas-banner .actas-more summary").await;
    phone
        .expect_banner_with("the banner's details", &["Sarah Lee", "#5201", "May see"])
        .await;
    phone
        .expect_no_sideways_scroll("the portal under the banner")
        .await;
    phone.go(&format!("{gateway}/loans")).await;
    phone.click("#export").await;
    phone
        .expect_text("the refused export", "Blocked by actas")
        .await;
    phone.expect_no_sideways_scroll("a gateway refusal").await;
    phone.shot("phone-refusal").await;
    phone.close().await;
    d.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_in_the_portal_watches_support_in_their_account_live() {
    let (d, _console, gateway, portal) = demo().await;
    let customer = Browser::open("live-customer", 1280, 900).await;
    customer.sign_in_portal_as_acme(&portal).await;
    customer.go(&format!("{portal}/access")).await;
    customer
        .expect_text("the access page", "Account access")
        .await;

    // Support starts a session and opens pages; the customer's page says so as it happens.
    let token = sarahs_view_session(&d, "#5300", "Customer asked why a payment is missing").await;
    let agent = Browser::open("live-agent", 1280, 900).await;
    agent
        .go(&format!("{gateway}/__actas/enter?token={}", token.expose()))
        .await;
    agent.expect_banner("the portal through the gateway").await;
    agent.go(&format!("{gateway}/payments")).await;
    agent.expect_banner("payments").await;
    customer
        .expect_text(
            "the live notice",
            "Sarah Lee from support is in your account now",
        )
        .await;
    customer.expect_text("the live notice", "/payments").await;
    customer.shot("support-live").await;

    // The session ends: the customer sees that too, without reloading.
    agent.click("#actas-banner form.actas-end button").await;
    customer
        .expect_text("the live notice after the end", "session on Acme Co ended")
        .await;
    customer.shot("support-ended").await;
    agent.close().await;
    customer.close().await;
    d.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_director_recertifies_access_and_an_overdue_grant_is_suspended_until_then() {
    let (d, console, _gateway, _portal) = demo().await;
    // A hundred days pass for Omar's grant: the review policy is 90 days. (The test moves
    // the grant's last review back rather than the clock forward.)
    let db = common::BackDoor::open(&d.data).await;
    let long_ago = actas_core::Timestamp::now().as_millis() - 100 * 86_400_000;
    db.execute(
        "UPDATE allow_list SET reviewed_at = $1 WHERE staff_id = (SELECT id FROM staff WHERE email = 'omar@northwind.example')",
        vec![common::Bind::Int(long_ago)],
    )
    .await;
    db.close().await;

    // Omar is told why he can't act as the customer.
    let omar = Browser::open("recert-agent", 1280, 900).await;
    omar.sign_in_console(&console, "omar@northwind.example")
        .await;
    omar.go(&format!("{console}/accounts/acme")).await;
    omar.expect_text(
        "a suspended agent's account page",
        "overdue for its review, so it is suspended",
    )
    .await;
    omar.shot("suspended").await;

    // The director sees it due, and confirms it with a reason.
    let dana = Browser::open("recert-director", 1280, 900).await;
    dana.sign_in_console(&console, "dana@northwind.example")
        .await;
    dana.expect_text("the director's home", "review overdue since")
        .await;
    dana.go(&format!("{console}/allow-list")).await;
    dana.expect_text("the allow-list", "suspended until confirmed")
        .await;
    dana.expect_text("the allow-list", "due for review").await;
    dana.shot("allow-list-due").await;
    let form = "form.confirm:has(input[value='omar@northwind.example'])";
    dana.fill(
        &format!("{form} input[name=reason]"),
        "Still on the billing rota",
    )
    .await;
    dana.click(&format!("{form} button")).await;
    dana.expect_text("the confirmation", "Confirmed.").await;
    let page = dana.source().await;
    assert!(!page.contains("suspended until confirmed"), "{page}");

    // Omar may ask again.
    omar.go(&format!("{console}/accounts/acme")).await;
    omar.expect_text("the account page after the review", "Act as this customer")
        .await;
    assert!(
        ledger_says(&d, "Dana Park reviewed Omar Haddad's access and kept it, up to medium risk: “Still on the billing rota”").await,
        "the review is in the ledger"
    );
    omar.close().await;
    dana.close().await;
    d.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leads_weekly_review_reads_the_session_and_records_a_verdict() {
    let (d, console, gateway, _portal) = demo().await;
    // Sarah looks at Acme Co's loans and tries an export, which is blocked; she ends.
    let token = sarahs_view_session(&d, "#7001", "Customer asks about a late fee").await;
    let agent = Browser::open("review-agent", 1280, 900).await;
    agent
        .go(&format!("{gateway}/__actas/enter?token={}", token.expose()))
        .await;
    agent.expect_text("the overview", "Welcome, Acme Co").await;
    agent.go(&format!("{gateway}/loans")).await;
    agent.click("#export").await;
    agent
        .expect_text("the refused export", "Blocked by actas")
        .await;
    agent.click("#actas-banner button").await;
    agent
        .expect_text("the end notice", "Support session ended")
        .await;
    agent.close().await;

    // Lee's home says a session waits; the queue says why, in words.
    let lee = Browser::open("review-lead", 1280, 900).await;
    lee.sign_in_console(&console, "lee@northwind.example").await;
    lee.expect_text("the lead's home", "Sessions to review")
        .await;
    lee.expect_text(
        "the lead's home",
        "1 ended session is waiting for your review",
    )
    .await;
    lee.click("a[href='/reviews']").await;
    lee.expect_text("the review queue", "1 blocked attempt")
        .await;
    lee.expect_text("the review queue", "Sarah Lee → Acme Co")
        .await;
    lee.shot("queue").await;

    // The timeline reads plainly; Lee asks for a follow-up, with a note.
    lee.click("table.reviews a[href^='/sessions/']").await;
    lee.expect_text("the session's timeline", "was blocked")
        .await;
    let timeline = lee.client.current_url().await.expect("url").to_string();

    // The loans page as Sarah saw it: checked against the ledger, shown in a sandbox.
    let kept = ledger(&d)
        .await
        .into_iter()
        .find_map(|e| match e.body.data {
            actas_core::event::EventData::PagesKept { pages, .. } => pages
                .into_iter()
                .find(|p| p.path == "/loans")
                .map(|p| p.sha256),
            _ => None,
        })
        .expect("the loans page's hash is in the ledger");
    let links = lee
        .client
        .find_all(Locator::Css("ol.timeline a[href*='/pages/']"))
        .await
        .expect("copy links");
    assert!(links.len() >= 2, "the overview and the loans page are kept");
    links[links.len() - 1]
        .clone()
        .click()
        .await
        .expect("open the copy");
    lee.expect_text("the kept page", "matches the ledger").await;
    lee.expect_text("the kept page", &kept).await;
    lee.expect_text("the kept page", "/loans as Sarah Lee saw it")
        .await;
    lee.client.enter_frame(0).await.expect("the copy's frame");
    lee.expect_text("the copy itself", "Acting as Acme Co")
        .await;
    lee.client.enter_parent_frame().await.expect("back");
    lee.shot("page-copy").await;
    lee.go(&timeline).await;

    lee.click("input[name=outcome][value=follow_up]").await;
    lee.click("form[action$='/review'] button").await;
    lee.expect_text("the verdict without a note", "Say what needs following up")
        .await;
    lee.click("input[name=outcome][value=follow_up]").await;
    lee.fill(
        "form[action$='/review'] textarea[name=note]",
        "Ask Sarah why she tried the export",
    )
    .await;
    lee.click("form[action$='/review'] button").await;
    lee.expect_text("the queue after the review", "Your review is recorded")
        .await;
    lee.expect_text(
        "the queue after the review",
        "Nothing is waiting for a review",
    )
    .await;
    lee.expect_text("the queue after the review", "Needs follow-up by Lee Chen")
        .await;
    lee.shot("reviewed").await;

    // The week's summary counts Sarah's session and her blocked attempt.
    lee.click("a[href^='/reviews/week']").await;
    lee.expect_text("the weekly summary", "The week of").await;
    lee.expect_text("the weekly summary", "Sarah Lee").await;
    lee.expect_text("the weekly summary", "The whole team")
        .await;
    lee.shot("week").await;

    assert!(
        ledger_says(&d, "Lee Chen reviewed Sarah Lee's session on Acme Co for ticket #7001: needs follow-up: “Ask Sarah why she tried the export”").await,
        "the review is in the ledger"
    );
    lee.close().await;
    d.stop().await.expect("stop");
}

impl Browser {
    /// Signs Sarah in on the test identity provider's login page.
    async fn sign_in_at_test_provider(&self) {
        self.expect_text("the provider's login page", "Test identity provider")
            .await;
        self.fill("#sub", "u-sarah").await;
        self.fill("#email", "sarah@example.com").await;
        self.fill("#acr", "urn:actas:mfa").await;
        self.shot("provider").await;
        self.click("#sign-in").await;
    }
}

/// Sarah signs in through the identity provider's own login page, and starting a session
/// takes her back there (step-up) before it starts. The console is served as
/// `localhost` and the provider as `127.0.0.1`: two sites, so the provider's redirects
/// back are cross-site navigations, as with a real provider (the binding cookie must
/// come along, the console's Strict cookie must not be needed on the way back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_signs_in_through_the_identity_provider_and_steps_up_before_a_session() {
    use actas_core::scope::Risk;
    use actas_core::staff::Role;
    let idp = common::idp::Idp::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("data");
    let data = common::fresh_data(&root).await;
    idp.configure(&root, false, "");
    let port = free_port();
    let console = format!("http://localhost:{port}");
    let app = actas_server::app::Application::build(
        &data,
        actas_server::app::ServeSettings {
            console_url: Some(console.clone()),
            ..actas_server::app::ServeSettings::on(([127, 0, 0, 1], port).into())
        },
    )
    .await
    .expect("start");
    idp.hook(
        "redirect_uris",
        serde_json::json!([format!("{console}/sign-in/sso/callback")]),
    )
    .await;
    let s = app.service();
    common::add_staff(
        s,
        &[
            ("dana@example.com", "Dana Park", Role::Director),
            ("sarah@example.com", "Sarah Lee", Role::Agent),
        ],
    )
    .await;
    common::allow(s, "sarah@example.com", Risk::Low).await;
    common::acme(s).await;
    let sarah = common::staff(s, "sarah@example.com").await;
    let request = common::view_request(s, &sarah).await;

    let b = Browser::open("oidc", 1280, 900).await;
    b.go(&format!("{console}/sign-in")).await;
    b.expect_text("the sign-in page", "Sign in with Test IdP")
        .await;
    let html = b.source().await;
    assert!(!html.contains("type=\"password\""), "passwords are off");
    b.click("a.button").await;
    b.sign_in_at_test_provider().await;
    b.expect_text("the console after signing in", "Sarah Lee")
        .await;
    b.shot("signed-in").await;

    b.go(&format!("{console}/requests/{}", request.id)).await;
    b.expect_text("the request", "confirm it is you at Test IdP")
        .await;
    b.click("#start").await;
    // prompt=login: the provider asks again, however recently she signed in there.
    b.sign_in_at_test_provider().await;
    b.expect_text("the session page", "Acting as Acme Co").await;
    b.shot("session").await;
    assert!(
        s.store()
            .active_session_of(sarah.id)
            .await
            .expect("read")
            .is_some(),
        "the session started"
    );
    let said: Vec<String> = s
        .store()
        .events(&actas_store::EventFilter::default(), 0, 10_000)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.body.summary)
        .collect();
    assert!(
        said.iter()
            .any(|x| x == "Sarah Lee signed in through Test IdP"),
        "{said:#?}"
    );
    b.close().await;
    app.stop().await.expect("stop");
    drop(idp);
}

/// Puts `text` in a file and drops it on the verifier page's file input; returns what
/// the page says.
async fn verify_in_page(
    b: &Browser,
    dir: &std::path::Path,
    name: &str,
    text: impl AsRef<[u8]>,
) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    b.client
        .execute(
            "document.getElementById('result').textContent = ''; document.getElementById('file').value = '';",
            vec![],
        )
        .await
        .expect("reset");
    b.client
        .find(Locator::Css("#file"))
        .await
        .expect("file input")
        .send_keys(&path.display().to_string())
        .await
        .expect("choose the file");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let said = b
            .client
            .find(Locator::Css("#result"))
            .await
            .expect("result")
            .text()
            .await
            .unwrap_or_default();
        if said.starts_with("Complete")
            || said.starts_with("Genuine")
            || said.contains("does not hold")
            || said.contains("could not be checked")
        {
            return said;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: the verifier page said nothing in time: {said:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_page_proves_a_true_extract_and_refuses_every_tampered_one() {
    use serde_json::Value;
    let (d, console, _gateway, _portal) = demo().await;
    let s = d.app.service();
    // Acme's history, with another account's events around it.
    for (account, doc) in [
        ("acme", "LA-77"),
        ("globex", "the merger plan"),
        ("acme", "DD-9"),
        ("globex", "the board minutes"),
        ("acme", "NT-1"),
    ] {
        let who = s.account_ref(account).await.expect("account");
        s.store()
            .append(actas_core::event::NewEvent::new(
                actas_core::event::Actor::Customer(who.clone()),
                actas_core::event::EventData::SupportNote {
                    session: actas_core::ids::SessionId::random(),
                    account: who,
                    ticket: actas_core::text::TicketRef::try_from("#1".to_owned()).expect("ticket"),
                    note: actas_core::text::Note::parse(doc).expect("note"),
                },
            ))
            .await
            .expect("append");
    }
    let extract = |account: &'static str| async move {
        serde_json::to_value(s.audit_extract(account, None).await.expect("extract")).expect("json")
    };
    let good = extract("acme").await;
    let other = extract("globex").await;
    let b = Browser::open("verify-page", 1200, 900).await;
    let page = format!("{console}/verify");
    b.go(&page).await;
    let r = reqwest::get(&page).await.expect("page");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("connect-src 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let dir = tempfile::tempdir().expect("dir");
    let n = good["events"].as_array().expect("events").len();
    assert!(n >= 4, "{n}");

    let said = verify_in_page(&b, dir.path(), "good.json", &good.to_string()).await;
    assert!(
        said.starts_with(&format!("Complete: all {n} events of account acme are exactly as recorded, and there are no others")),
        "{said}"
    );
    b.shot("verified").await;
    // The compressed form (`?format=json.gz`) is opened in the page too.
    let gzip = |text: &str| {
        use std::io::Write;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(text.as_bytes()).expect("gzip");
        z.finish().expect("gzip")
    };
    let said = verify_in_page(&b, dir.path(), "good.json.gz", gzip(&good.to_string())).await;
    assert!(
        said.starts_with(&format!("Complete: all {n} events")),
        "{said}"
    );
    let said = verify_in_page(
        &b,
        dir.path(),
        "edited.json.gz",
        gzip(&good.to_string().replacen("LA-77", "LA-78", 1)),
    )
    .await;
    assert!(said.contains("does not hold"), "{said}");

    let mut cases: Vec<(&str, Value, &str)> = Vec::new();
    // Edit: one word of an event's text.
    let mut e = good.clone();
    let body = e["events"][1]["body"].as_str().expect("body").to_owned();
    let at = e["events"].as_array().expect("events").len() - 3;
    let body_at = e["events"][at]["body"]
        .as_str()
        .expect("body")
        .replacen("LA-77", "LA-78", 1);
    assert_ne!(
        body_at,
        e["events"][at]["body"].as_str().expect("body"),
        "{body}"
    );
    let body = body_at;
    e["events"][at]["body"] = Value::String(body);
    cases.push(("edited", e, "does not follow on from the event before it"));
    // Delete in the middle, and at the tail.
    let mut e = good.clone();
    e["events"].as_array_mut().expect("events").remove(2);
    cases.push((
        "deleted-middle",
        e,
        "events of the account are missing before it",
    ));
    let mut e = good.clone();
    e["events"].as_array_mut().expect("events").pop();
    cases.push(("deleted-tail", e, "the signed checkpoint counts"));
    // Reorder.
    let mut e = good.clone();
    e["events"].as_array_mut().expect("events").swap(1, 2);
    cases.push(("reordered", e, "(number 2 in the file)"));
    // Another account's event, put in its place in ledger order.
    let mut e = good.clone();
    let stranger = other["events"]
        .as_array()
        .expect("events")
        .last()
        .expect("one")
        .clone();
    let events = e["events"].as_array_mut().expect("events");
    events.push(stranger);
    events.sort_by_key(|x| x["seq"].as_u64());
    cases.push(("inserted", e, "is not an event of account acme"));
    // The checkpoint forged to match a shortened history.
    let mut e = good.clone();
    e["events"].as_array_mut().expect("events").pop();
    e["checkpoint"]["events"] = Value::from(n as u64 - 1);
    cases.push((
        "forged-checkpoint",
        e,
        "its account checkpoint is not validly signed",
    ));
    // Everything re-signed with another key.
    let forger = actas_core::tree_head::LedgerKey::from_bytes(&[7; 32]).expect("key");
    let mut e = good.clone();
    e["public_key"] = Value::String(forger.public().to_base64());
    cases.push(("other-key", e, "which this actas instance does not publish"));
    // A proof hash changed.
    let mut e = good.clone();
    let proof = e["proof"].as_str().expect("proof").to_owned();
    let flipped = match proof.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", proof.get(1..).unwrap_or("")),
    };
    e["proof"] = Value::String(flipped);
    cases.push(("proof", e, "one of them, or the proof, was changed"));
    for (name, tampered, wanted) in cases {
        let said = verify_in_page(
            &b,
            dir.path(),
            &format!("{name}.json"),
            &tampered.to_string(),
        )
        .await;
        assert!(
            said.starts_with("This extract does not hold") && said.contains(wanted),
            "{name}: {said}"
        );
        // The command line refuses it too.
        let path = dir.path().join(format!("{name}.json"));
        let out = Command::new(env!("CARGO_BIN_EXE_actas"))
            .args(["--data", "/nonexistent/actas", "audit", "verify-extract"])
            .arg(&path)
            .args([
                "--key",
                &s.ledger_keys(&actas_core::checkpoint::Origin::parse("x").expect("origin"))
                    .await
                    .expect("keys")[0]
                    .key,
            ])
            .output()
            .expect("run actas");
        assert!(!out.status.success(), "{name}: the command accepted it");
    }
    // Nothing was fetched after the page loaded.
    let fetched = b
        .client
        .execute(
            "return performance.getEntriesByType('resource').length",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(fetched, serde_json::json!(0));
    b.close().await;
    d.stop().await.expect("stop");
}
