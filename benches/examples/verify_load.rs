//! A verification probe: `cargo run --release -p benches --example verify_load -- EVENTS`.
//! Builds a chain of EVENTS records on sled, then times full and links-only verification
//! of the store and of its export.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let (l, _dir, _events) = benches::chain_from_args();
    let mut export = Vec::new();
    l.export(&["gxp".to_string()], &mut export).expect("export");
    for mode in [ledger::VerifyMode::LinksOnly, ledger::VerifyMode::Full] {
        let t = std::time::Instant::now();
        let r = l
            .verify("gxp", mode, ledger::VerifyPolicy::default())
            .expect("verify");
        let s = t.elapsed().as_secs_f64();
        println!(
            "store  {mode:?}: {} events in {s:.3} s = {:.0}/s",
            r.verified,
            r.verified as f64 / s
        );
        let t = std::time::Instant::now();
        let r = ledger::export::verify_export(export.as_slice(), mode, None).expect("parse");
        let s = t.elapsed().as_secs_f64();
        println!(
            "export {mode:?}: {} events in {s:.3} s = {:.0}/s",
            r[0].verified,
            r[0].verified as f64 / s
        );
    }
}
