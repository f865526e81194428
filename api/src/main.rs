//! `audit-ledger`: the operator's command over a data directory.
//!
//! Today: `init` (create the store and the five built-in apps), `apps`, `verify`, `export`
//! and `keys`. The HTTP server (`serve`) arrives with the server's issue. Exit status: 0
//! when all is well, 1 when verification found a bad event, 2 on any error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use ledger::{Ledger, VerifyMode, VerifyPolicy};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
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
