//! `audit-ledger`: the server (`serve`) and the operator's commands over a data directory:
//! `init` (create the store and the five built-in apps), `apps`, `verify`, `export`,
//! `keys`, and `user add` (how a deployment creates its first admin). Exit status: 0 when
//! all is well, 1 when verification found a bad event, 2 on any error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use api::{Server, ServerConfig};
use clap::{Parser, Subcommand, ValueEnum};
use ledger::{Ledger, VerifyMode, VerifyPolicy};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "audit-ledger",
    version,
    about = "An immutable, hash-chained, signed audit ledger"
)]
struct Cli {
    /// The data directory (the embedded store and the signing keys).
    #[arg(long, global = true, default_value = "./data")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Every hash, link, key and signature.
    Full,
    /// Hashes and links only.
    LinksOnly,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serves the Parse-compatible HTTP API on the embedded store (five apps loaded).
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// Seed demo data once (fresh apps only) and a demo user per role in every app.
        #[arg(long)]
        demo: bool,
        /// The demo users' password.
        #[arg(long, default_value = api::demo::DEFAULT_DEMO_PASSWORD)]
        demo_password: String,
        /// Events of demo history generated into fresh apps.
        #[arg(long, default_value_t = api::demo::DEMO_EVENTS)]
        demo_events: u64,
        /// Per-app account policies (JSON; see docs/API.md).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Largest request body in bytes.
        #[arg(long, default_value_t = 1024 * 1024)]
        max_body_bytes: usize,
        /// Deepest JSON nesting accepted.
        #[arg(long, default_value_t = 32)]
        max_json_depth: usize,
        /// Seconds between signed checkpoints of every app that grew (0: on demand only).
        #[arg(long, default_value_t = 300)]
        checkpoint_every: u64,
        /// MiB kept free on the data directory's file system: below it (or on a read-only
        /// file system) writes are refused with 503 until space returns (0: no check).
        #[arg(long, default_value_t = ledger::DEFAULT_MIN_FREE_BYTES / (1024 * 1024))]
        min_free_mb: u64,
    },
    /// Manages accounts while no server holds the data directory.
    User {
        #[command(subcommand)]
        command: UserCmd,
    },
    /// Creates the data directory and the five built-in apps (those missing).
    Init,
    /// Lists the apps with their head.
    Apps,
    /// Verifies apps' chains (all apps if none is named).
    Verify {
        /// Apps to verify.
        apps: Vec<String>,
        /// How much to check.
        #[arg(long, value_enum, default_value = "full")]
        mode: Mode,
    },
    /// Writes apps' chains as an NDJSON export (docs/FORMAT.md §4) to a file or stdout.
    Export {
        /// Apps to export (all if none).
        apps: Vec<String>,
        /// Output file (stdout if absent).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Prints each app's public keys with the events they sign.
    Keys,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Creates an account with a role; the password is read from stdin (one line).
    Add {
        /// The app.
        #[arg(long)]
        app: String,
        /// The username.
        #[arg(long)]
        username: String,
        /// The role: admin, manager, coordinator, field_staff, auditor or qa_reviewer.
        #[arg(long)]
        role: String,
        /// The e-mail address.
        #[arg(long)]
        email: Option<String>,
    },
}

fn open(dir: &std::path::Path) -> Result<Ledger> {
    Ledger::open_dir(dir).with_context(|| format!("opening the data directory {}", dir.display()))
}

fn chosen(l: &Ledger, apps: Vec<String>) -> Result<Vec<String>> {
    let known = l.apps();
    if apps.is_empty() {
        return Ok(known);
    }
    for a in &apps {
        anyhow::ensure!(
            known.contains(a),
            "no app named {a:?} (apps: {})",
            known.join(", ")
        );
    }
    Ok(apps)
}

fn serve(data_dir: PathBuf, cmd: Cmd) -> Result<ExitCode> {
    let Cmd::Serve {
        bind,
        demo,
        demo_password,
        demo_events,
        config,
        max_body_bytes,
        max_json_depth,
        checkpoint_every,
        min_free_mb,
    } = cmd
    else {
        return Ok(ExitCode::from(2));
    };
    // Colours only on a terminal: escape codes in a log file are noise (and formatting
    // them cost each request's span a little CPU).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    api::server::install_metrics();
    let mut cfg = ServerConfig::new(&data_dir);
    cfg.bind = bind;
    cfg.max_body_bytes = max_body_bytes;
    cfg.max_json_depth = max_json_depth;
    cfg.checkpoint_interval =
        (checkpoint_every > 0).then(|| std::time::Duration::from_secs(checkpoint_every));
    cfg.min_free_bytes = min_free_mb.saturating_mul(1024 * 1024);
    if let Some(path) = &config {
        cfg.load_policies(path)?;
    }
    if demo {
        anyhow::ensure!(
            api::auth::check_new_password(&demo_password).is_ok(),
            "--demo-password: at least {} characters",
            api::auth::MIN_PASSWORD
        );
        let now = ledger::Clock::now(&ledger::SystemClock);
        match api::demo::seed_history(&data_dir, now, demo_events).context("seeding demo data")? {
            Some(stats) => tracing::info!("demo data: {stats}"),
            None => tracing::info!("demo data: the apps already hold data; none generated"),
        }
    }
    let server = Server::open(cfg)?;
    if demo {
        let n = api::demo::ensure_accounts(server.state(), &demo_password)?;
        tracing::info!("demo accounts: {n} created (username = role name in every app)");
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("listening on {bind}"))?;
        tracing::info!(
            "audit-ledger serving {} on http://{bind} (Parse API at /parse)",
            data_dir.display()
        );
        server.serve(listener, shutdown_signal()).await?;
        tracing::info!("stopped: in-flight requests finished, stores flushed");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn user_add(data_dir: PathBuf, cmd: UserCmd) -> Result<ExitCode> {
    let UserCmd::Add {
        app,
        username,
        role,
        email,
    } = cmd;
    anyhow::ensure!(
        api::auth::permissions::Role::from_name(&role).is_some(),
        "--role: {role:?} is not a role (admin, manager, coordinator, field_staff, auditor, qa_reviewer)"
    );
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    let server = Server::open(ServerConfig::new(&data_dir))?;
    let state = server.state();
    state
        .known_app(Some(&app))
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let mut fields = serde_json::Map::new();
    fields.insert("role".into(), serde_json::json!(role));
    if let Some(e) = email {
        fields.insert("email".into(), serde_json::json!(e));
    }
    let (id, appended) = api::accounts::create_user(
        state,
        &app,
        Some(ledger::Actor::system()),
        None,
        api::accounts::NewUser {
            username: username.clone(),
            password,
            fields,
        },
    )
    .map_err(|e| anyhow::anyhow!(e.message))?;
    println!(
        "created {username} ({role}) in {app}: objectId {id}, event {}",
        appended.event.seq
    );
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        cmd @ Cmd::Serve { .. } => return serve(cli.data_dir, cmd),
        Cmd::User { command } => return user_add(cli.data_dir, command),
        Cmd::Init => {
            let l = open(&cli.data_dir)?;
            let created = l
                .ensure_builtin_apps()
                .context("creating the built-in apps")?;
            println!(
                "data directory {}: apps {}",
                cli.data_dir.display(),
                l.apps().join(", ")
            );
            if !created.is_empty() {
                println!("created: {}", created.join(", "));
            }
        }
        Cmd::Apps => {
            let l = open(&cli.data_dir)?;
            for app in l.apps() {
                if let Some(h) = l.head(&app) {
                    println!(
                        "{app}\t{} events\thead {}\t{}",
                        h.seq,
                        hex_of(&h.hash),
                        h.recorded_at
                    );
                }
            }
        }
        Cmd::Verify { apps, mode } => {
            let l = open(&cli.data_dir)?;
            let mode = match mode {
                Mode::Full => VerifyMode::Full,
                Mode::LinksOnly => VerifyMode::LinksOnly,
            };
            let mut bad = false;
            for app in chosen(&l, apps)? {
                let start = std::time::Instant::now();
                let r = l.verify(&app, mode, VerifyPolicy::default())?;
                let secs = start.elapsed().as_secs_f64();
                match &r.failure {
                    None => println!(
                        "{app}: OK, {} events verified in {secs:.2} s, head {}",
                        r.verified,
                        r.last_hash.as_deref().unwrap_or("-")
                    ),
                    Some(f) => {
                        bad = true;
                        println!(
                            "{app}: FAILED at {f} ({} events verified before it)",
                            r.verified
                        );
                    }
                }
            }
            return Ok(if bad {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
        Cmd::Export { apps, out } => {
            let l = open(&cli.data_dir)?;
            let apps = chosen(&l, apps)?;
            let n = match &out {
                Some(path) => {
                    let mut f = std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    l.export(&apps, &mut f)?
                }
                None => l.export(&apps, &mut std::io::stdout().lock())?,
            };
            eprintln!("exported {n} events of {}", apps.join(", "));
        }
        Cmd::Keys => {
            let l = open(&cli.data_dir)?;
            // Tab-separated, one key a line: easy to read and to cut for --pin-genesis.
            println!("app\tkey_id\tpublic_key_ed25519\tfrom_seq\tto_seq");
            for app in l.apps() {
                for k in l.public_keys(&app)? {
                    let to = k.to_seq.map_or("active".to_string(), |s| s.to_string());
                    println!(
                        "{app}\t{}\t{}\t{}\t{to}",
                        k.key_id, k.public_key, k.from_seq
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
