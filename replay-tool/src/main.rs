//! `ledger-replay`: see the crate documentation and `ledger-replay --help`.
//!
//! Exit status: 0 when the command succeeded (for `verify` and `check-proof`: when
//! everything verified), 1 when something did not verify, 2 on any other error (bad
//! input, unreadable source, server refusal).

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = replay_tool::cli::Args::parse();
    match replay_tool::run(&args) {
        Ok(code) => code,
        // A reader that stopped reading (`| head`) is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ledger-replay: {e:#}");
            ExitCode::from(2)
        }
    }
}
