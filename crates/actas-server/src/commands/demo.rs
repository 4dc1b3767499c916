//! `actas demo`: starts everything, prints where and who, and waits for Ctrl-C.

use crate::cli::Failure;
use crate::demo::{Demo, DemoSettings, STAFF, STAFF_PASSWORD};

pub(super) async fn run(settings: DemoSettings) -> Result<(), Failure> {
    let demo = Demo::start(settings).await.map_err(Failure::input)?;
    let console = format!("http://{}", demo.app.console_addr());
    let gateway = demo
        .app
        .gateway_addr()
        .map(|g| format!("http://{g}"))
        .unwrap_or_default();
    println!("actas demo is running.");
    println!();
    println!("  Console   {console}   staff sign in here");
    println!("  Gateway   {gateway}   opened from the console when a support session starts");
    println!(
        "  Portal    http://{}   Northwind Lending, the customers' product",
        demo.portal_addr
    );
    println!();
    println!("Staff (console), password \"{STAFF_PASSWORD}\" for everyone:");
    for (email, name, role, risk) in STAFF {
        let allowed = match risk {
            Some(r) => format!("may act as customers up to {r} risk"),
            None if *role == actas_core::staff::Role::Agent => "not on the allow-list".to_owned(),
            None => String::new(),
        };
        println!("  {email:<26} {name:<12} {role:<9} {allowed}");
    }
    println!();
    println!("Customers (portal), sign in with id and password:");
    println!("  acme     / acme-demo      Acme Co      an ordinary account");
    println!(
        "  globex   / globex-demo    Globex Ltd   sensitive: every session needs a code from the customer"
    );
    println!("  initech  / initech-demo   Initech      has revoked consent for support access");
    println!();
    println!("A first tour: sign in to the console as sarah@northwind.example, open Acme Co,");
    println!("ask for \"Change notification and tax settings\" with ticket #4821 and a reason,");
    println!("start the session, change the tax rate in the portal, end the session from the");
    println!("banner, then read the session's timeline in the console. Sign in to the portal");
    println!("as acme to see it from the customer's side under \"Account access\".");
    println!();
    if demo.temporary {
        println!(
            "Data: {} (temporary; removed when you stop. Keep it with --data DIR.)",
            demo.data.display()
        );
    } else {
        println!("Data: {} (kept)", demo.data.display());
    }
    println!("Press Ctrl-C to stop.");
    super::shutdown_signal().await;
    println!("Stopping: finishing requests and signing the ledger.");
    demo.stop().await.map_err(Failure::input)?;
    println!("Stopped cleanly.");
    Ok(())
}
