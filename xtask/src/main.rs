//! `cargo xtask test`: makes sure what the tests need is on this machine, then runs
//! formatting, lints and the whole suite. It never skips silently: anything it can't
//! provide stops it with a message saying what and why.
//!
//! `cargo xtask bench`: runs the benchmarks that BENCHMARKS.md reports.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("bench-gateway") => bench_gateway(),
        Some("bench-gateway-cpu") => bench_gateway_cpu(),
        Some("bench-customer") => bench_customer(),
        Some("bench-backends") => bench_backends(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("prereqs") => prerequisites(),
        _ => Err(
            "usage: cargo xtask test [nextest filters…] | cargo xtask bench | cargo xtask bench-gateway | cargo xtask bench-gateway-cpu | cargo xtask bench-customer | cargo xtask bench-backends | cargo xtask fuzz [seconds per target] | cargo xtask prereqs"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn step(title: &str) {
    eprintln!("\n==> {title}");
}

fn run(program: &str, args: &[&str]) -> Result {
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("could not run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn test(filters: &[String]) -> Result {
    prerequisites()?;
    step("cargo fmt --check");
    run("cargo", &["fmt", "--all", "--check"])?;
    step("cargo clippy (all targets, warnings are errors)");
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    step("doc tests");
    run("cargo", &["test", "--workspace", "--doc", "--quiet"])?;
    if filters.is_empty() {
        // Each fuzz target for a little while, on a copy of the kept corpus (which the
        // suite's own replay test already checked).
        fuzz_targets(FUZZ_BRIEFLY_SECONDS, false)?;
    }
    if filters.is_empty() {
        postgres_pass()?;
    }
    // Last, so its summary ("N tests run: N passed") closes the output.
    step("cargo nextest run --workspace");
    let mut args = vec!["nextest", "run", "--workspace", "--no-fail-fast"];
    args.extend(filters.iter().map(String::as_str));
    let outcome = run("cargo", &args);
    // tests/instances.rs runs on PostgreSQL in this pass too.
    drop_test_databases()?;
    outcome
}

/// The server's tests that go through a data directory, a store or the demo, run again
/// with every one on a PostgreSQL database of its own (`ACTAS_TEST_BACKEND=postgres`,
/// read by `tests/common`). The store's own contract tests run on both backends in the
/// main pass; the CLI tests use the embedded default.
const POSTGRES_PASS: &[&str] = &[
    "api",
    "browser",
    "console",
    "customer",
    "demo",
    "flow",
    "gateway",
    "oidc",
    "races",
    "recertify",
    "reviews",
    "roles",
    "service",
    "signed",
    "tickets",
];

/// Runs [`POSTGRES_PASS`] on PostgreSQL, then drops the databases it made.
fn postgres_pass() -> Result {
    step("the backend-sensitive tests again, on PostgreSQL");
    drop_test_databases()?;
    // `--workspace`, as the main pass builds: with `-p actas-server` cargo unifies
    // features differently, and every test binary was built (and stored) twice.
    let mut args = vec!["nextest", "run", "--workspace", "--no-fail-fast"];
    for t in POSTGRES_PASS {
        args.extend(["--test", t]);
    }
    let status = Command::new("cargo")
        .args(&args)
        .env("ACTAS_TEST_BACKEND", "postgres")
        .current_dir(root())
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    drop_test_databases()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the PostgreSQL pass failed ({status})"))
    }
}

/// Drops every database the tests made (`actas_suite_…` by the server's tests, whose
/// processes end with each test; `actas_store_…` left by a store test that was killed;
/// `actas_bench_…` left by a benchmark that was).
fn drop_test_databases() -> Result {
    let psql = |sql: &str| {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atqc",
                sql,
            ])
            .output()
            .map_err(|e| format!("could not run psql: {e}"))
    };
    let out = psql(
        "SELECT datname FROM pg_database WHERE datname LIKE 'actas\\_suite\\_%' OR datname LIKE 'actas\\_store\\_%' OR datname LIKE 'actas\\_bench\\_%'",
    )?;
    if !out.status.success() {
        return Err(format!(
            "psql could not list the test databases: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let dropped = psql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))?;
        if !dropped.status.success() {
            return Err(format!(
                "could not drop the test database {name}: {}",
                String::from_utf8_lossy(&dropped.stderr)
            ));
        }
    }
    Ok(())
}

/// The fuzz targets (`fuzz/fuzz_targets/`), each checking that no planted secret comes
/// out of the masker and nothing panics.
const FUZZ_TARGETS: &[&str] = &["html", "html_raw", "json", "urls"];

/// How long `cargo xtask test` runs each fuzz target.
const FUZZ_BRIEFLY_SECONDS: u32 = 15;

/// `cargo xtask fuzz [seconds]`: each target for that long (default 120 s), growing the
/// kept corpus in `fuzz/corpus/` with what the fuzzer finds new.
fn fuzz(args: &[String]) -> Result {
    let seconds = match args.first() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("{s:?} is not a number of seconds"))?,
        None => 120,
    };
    fuzz_targets(seconds, true)
}

/// Runs every fuzz target for `seconds` with cargo-fuzz on the nightly toolchain (this
/// machine has one beside stable; cargo-fuzz is installed from crates.io when missing).
/// With `grow`, new inputs go into the kept corpus; otherwise into a copy under target/.
fn fuzz_targets(seconds: u32, grow: bool) -> Result {
    step(&format!("fuzz targets, {seconds} s each"));
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !nightly {
        return Err("fuzzing needs the nightly toolchain (rustup toolchain install nightly), and none is installed".into());
    }
    if !have("cargo-fuzz") {
        eprintln!("cargo-fuzz is missing; installing it");
        run("cargo", &["install", "--locked", "cargo-fuzz"])?;
    }
    let root = root();
    for target in FUZZ_TARGETS {
        let kept = root.join("fuzz/corpus").join(target);
        let corpus = if grow {
            kept
        } else {
            let copy = root.join("target/fuzz-corpus").join(target);
            let _ = std::fs::remove_dir_all(&copy);
            std::fs::create_dir_all(&copy).map_err(|e| format!("{}: {e}", copy.display()))?;
            for entry in std::fs::read_dir(&kept).map_err(|e| format!("{}: {e}", kept.display()))? {
                let path = entry.map_err(|e| e.to_string())?.path();
                if let Some(name) = path.file_name() {
                    std::fs::copy(&path, copy.join(name)).map_err(|e| e.to_string())?;
                }
            }
            copy
        };
        let status = Command::new("cargo")
            // Without a sanitizer: the targets check a property (no planted secret gets
            // through the rewriter), and all of actas is safe Rust; AddressSanitizer
            // would only watch the dependencies' own unsafe code, and it doubled the
            // build on CI's two cores.
            .args([
                "+nightly",
                "fuzz",
                "run",
                "--sanitizer",
                "none",
                "--fuzz-dir",
                "fuzz",
                target,
            ])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-timeout=10",
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ])
            .current_dir(&root)
            .status()
            .map_err(|e| format!("could not run cargo fuzz: {e}"))?;
        if !status.success() {
            return Err(format!(
                "the fuzz target {target} found an input that fails its check; it is saved under fuzz/artifacts/{target}/ (add it to fuzz/corpus/{target}/ once fixed)"
            ));
        }
    }
    Ok(())
}

fn bench(args: &[String]) -> Result {
    step("criterion benchmarks (release)");
    let mut a = vec![
        "bench",
        "--workspace",
        "--bench",
        "ledger_math",
        "--bench",
        "appends",
        "--bench",
        "rewrite",
    ];
    a.extend(args.iter().map(String::as_str));
    run("cargo", &a)
}

/// Installs each missing `(command, Debian package)` with apt.
fn ensure_tools(tools: &[(&str, &str)]) -> Result {
    for (tool, package) in tools {
        if !have(tool) {
            eprintln!("{tool} is missing; installing it with apt");
            run("apt-get", &["install", "-y", "-qq", package])
                .map_err(|e| format!("{tool} could not be installed: {e}"))?;
        }
    }
    Ok(())
}

/// Runs one of actas-server's examples (a benchmark) in release mode.
fn run_example(title: &str, name: &str) -> Result {
    step(title);
    run(
        "cargo",
        &[
            "run",
            "--release",
            "--quiet",
            "-p",
            "actas-server",
            "--example",
            name,
        ],
    )
}

/// The gateway load benchmark: the product direct, behind nginx, and behind the gateway,
/// measured with wrk in one run (installs wrk and nginx with apt when missing); then the
/// gateway's peak memory with a 100 MiB page.
fn bench_gateway() -> Result {
    ensure_tools(&[("wrk", "wrk"), ("nginx", "nginx")])?;
    run_example("gateway load benchmark (release)", "gateway_load")?;
    run_example(
        "gateway peak memory with a 100 MiB page (release)",
        "gateway_rss",
    )
}

/// Instructions per gateway request, counted by callgrind (installs valgrind with apt
/// when missing): the `gateway_instructions` example run for 200 and for 1,200 requests,
/// and the difference divided by 1,000, so the set-up cancels out. Counts repeat to
/// within a fraction of a percent, so two builds can be compared where wall-clock runs
/// on this shared machine can't.
fn bench_gateway_cpu() -> Result {
    ensure_tools(&[("valgrind", "valgrind")])?;
    step("gateway_instructions (release)");
    run(
        "cargo",
        &[
            "build",
            "--release",
            "--quiet",
            "-p",
            "actas-server",
            "--example",
            "gateway_instructions",
        ],
    )?;
    let binary = root().join("target/release/examples/gateway_instructions");
    let count = |n: u32| -> Result<u64> {
        let out_file = std::env::temp_dir().join(format!("actas-callgrind-{n}.out"));
        let out = Command::new("valgrind")
            .args([
                "--tool=callgrind",
                &format!("--callgrind-out-file={}", out_file.display()),
            ])
            .arg(&binary)
            .env("GATEWAY_REQUESTS", n.to_string())
            .output()
            .map_err(|e| format!("could not run valgrind: {e}"))?;
        let _ = std::fs::remove_file(&out_file);
        let text = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("the callgrind run of {n} requests failed:\n{text}"));
        }
        text.lines()
            .rev()
            .filter_map(|l| l.split("Collected :").nth(1))
            .find_map(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("callgrind printed no count:\n{text}"))
    };
    step("callgrind: 200 requests, then 1,200");
    let (few, many) = (count(200)?, count(1200)?);
    let per_request = many.saturating_sub(few) as f64 / 1000.0;
    println!("instructions for 200 requests: {few}; for 1,200: {many}");
    println!("instructions per request (gateway, product and client together): {per_request:.0}");
    Ok(())
}

/// The customer-side benchmark: event ingestion over HTTP at 1, 16 and 256 clients
/// against one transaction per event, and an extract of 100,000 events out of 1,000,000
/// (installs wrk with apt when missing).
/// Ingestion on SQLite, PostgreSQL with one instance and with two, with the time each
/// batch holds the ledger's lock (installs wrk with apt when missing; needs PostgreSQL).
fn bench_backends() -> Result {
    ensure_tools(&[("wrk", "wrk")])?;
    ensure_postgres()?;
    run_example("backends benchmark (release)", "backends_bench")
}

fn bench_customer() -> Result {
    ensure_tools(&[("wrk", "wrk")])?;
    run_example("customer-side benchmark (release)", "customer_bench")
}

/// What the suite needs from the machine. Each check either passes, is fixed, or fails
/// with the reason.
fn prerequisites() -> Result {
    step("prerequisites");
    if !have("cargo-nextest") {
        eprintln!("cargo-nextest is missing; installing it");
        run("cargo", &["install", "--locked", "cargo-nextest"])?;
    }
    ensure_postgres()?;
    ensure_browser()?;
    ensure_verifiers()?;
    ensure_identity_provider()?;
    ensure_schemathesis()?;
    eprintln!("prerequisites ready");
    Ok(())
}

/// Chromium and ChromeDriver for the end-to-end tests (tests/browser.rs), installed with
/// apt when missing. Without them the suite fails here, saying why; it never skips them.
fn ensure_browser() -> Result {
    let present =
        || Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
    if !present() {
        eprintln!("Chromium or ChromeDriver is missing; installing them with apt");
        // The package lists may be stale on a fresh machine: refresh them once if the
        // first attempt fails.
        if run(
            "apt-get",
            &["install", "-y", "-qq", "chromium", "chromium-driver"],
        )
        .is_err()
        {
            run("apt-get", &["update", "-qq"])
                .map_err(|e| format!("apt-get update failed: {e}"))?;
            run(
                "apt-get",
                &["install", "-y", "-qq", "chromium", "chromium-driver"],
            )
            .map_err(|e| format!("Chromium and ChromeDriver could not be installed: {e}"))?;
        }
    }
    if !present() {
        return Err("Chromium and ChromeDriver are still missing after installing them (expected /usr/bin/chromium and /usr/bin/chromedriver)".into());
    }
    eprintln!("Chromium and ChromeDriver are installed");
    Ok(())
}

/// What the assertion verifiers of `examples/verify/` need (tests/integrate.rs runs
/// them): PyJWT with `cryptography` for Python, and `jose` for Node, installed from PyPI
/// and npm when missing.
fn ensure_verifiers() -> Result {
    let python_ok = || {
        Command::new("python3")
            .args(["-c", "import jwt, cryptography"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !python_ok() {
        eprintln!("PyJWT or cryptography is missing; installing them with pip");
        run(
            "python3",
            &["-m", "pip", "install", "--quiet", "PyJWT", "cryptography"],
        )
        .map_err(|e| format!("PyJWT could not be installed: {e}"))?;
        if !python_ok() {
            return Err("PyJWT and cryptography are still missing after installing them".into());
        }
    }
    let verify = root().join("examples/verify");
    if !verify.join("node_modules/jose").exists() {
        eprintln!("the Node verifier's jose is missing; installing it with npm");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&verify)
            .status()
            .map_err(|e| format!("could not run npm (is Node installed?): {e}"))?;
        if !status.success() {
            return Err("npm ci in examples/verify failed".into());
        }
    }
    eprintln!("the assertion verifiers' libraries are installed");
    Ok(())
}

/// The schemathesis version the API's contract test (tests/api.rs) runs; pinned, so a
/// new release's new checks arrive as a change here, not as a failure out of nowhere.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// schemathesis in a venv of its own under `target/schemathesis` (from PyPI), made when
/// missing or of another version.
fn ensure_schemathesis() -> Result {
    let venv = root().join("target/schemathesis");
    let bin = venv.join("bin/schemathesis");
    let want = SCHEMATHESIS.trim_start_matches("schemathesis==");
    let version_ok = || {
        Command::new(&bin)
            .arg("--version")
            .output()
            .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(want))
            .unwrap_or(false)
    };
    if !version_ok() {
        eprintln!(
            "schemathesis {want} is missing; installing it with pip into {}",
            venv.display()
        );
        let _ = std::fs::remove_dir_all(&venv);
        let venv_text = venv.to_string_lossy().into_owned();
        run("python3", &["-m", "venv", &venv_text]).map_err(|e| {
            format!("could not make a venv for schemathesis (is python3-venv installed?): {e}")
        })?;
        let pip = venv.join("bin/pip").to_string_lossy().into_owned();
        run(&pip, &["install", "--quiet", SCHEMATHESIS])
            .map_err(|e| format!("schemathesis could not be installed: {e}"))?;
        if !version_ok() {
            return Err(format!(
                "schemathesis {want} is still missing after installing it"
            ));
        }
    }
    eprintln!("schemathesis {want} is installed");
    Ok(())
}

/// The identity provider the sign-in tests run against (tests/oidc.rs): the certified
/// npm package `oidc-provider`, installed with npm from the lock file when missing.
fn ensure_identity_provider() -> Result {
    let dir = root().join("crates/actas-server/tests/oidc");
    if !dir.join("node_modules/oidc-provider").exists() {
        eprintln!("the test identity provider (oidc-provider) is missing; installing it with npm");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .map_err(|e| format!("could not run npm (is Node installed?): {e}"))?;
        if !status.success() {
            return Err(format!("npm ci in {} failed", dir.display()));
        }
    }
    if !dir.join("node_modules/oidc-provider").exists() {
        return Err("oidc-provider is still missing after npm ci".into());
    }
    eprintln!("the test identity provider is installed");
    Ok(())
}

fn postgres_up() -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], 5432).into();
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// PostgreSQL on 127.0.0.1:5432, started with pg_ctlcluster if it is installed but down.
fn ensure_postgres() -> Result {
    if postgres_up() {
        eprintln!("PostgreSQL is running on 127.0.0.1:5432");
        return Ok(());
    }
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .map_err(|_| {
            "PostgreSQL is not running on 127.0.0.1:5432 and is not installed (no /etc/postgresql)"
                .to_string()
        })?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    for v in &versions {
        eprintln!("starting PostgreSQL {v}");
        let _ = run(
            "pg_ctlcluster",
            &["--skip-systemctl-redirect", v, "main", "start"],
        );
    }
    for _ in 0..30 {
        if postgres_up() {
            eprintln!("PostgreSQL is running on 127.0.0.1:5432");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(
        "PostgreSQL could not be started on 127.0.0.1:5432; the tests that need it can't run"
            .into(),
    )
}
