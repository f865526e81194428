//! The log on this machine: an export file, imported into a store in memory, or a data
//! directory opened read-only. Either way the ledger is opened with
//! [`Ledger::open_read_only`] (no signing key, nothing appended) and queried through the
//! same projections the server uses.
//!
//! An export is verified from the file's own bytes, not from the imported copy. A data
//! directory's projection store (`<dir>/projections`) is used and caught up as needed,
//! so a large log answers without a rebuild; the log itself is never written.

use std::cell::OnceCell;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use ledger::store::{MemoryStore, SledStore, Store, StoreError};
use ledger::verify::VerifyReport;
use ledger::{
    ConsistencyProof, InclusionProof, Ledger, PublicKey, Timestamp, VerifyMode, VerifyPolicy,
};
use projections::query::{Query, QueryParams};
use projections::report::{DayReport, Diff, History};
use projections::when::Day;
use projections::{At, Projections};
use serde_json::{Map, Value};

use super::{KeyRow, Source};

/// A local source.
pub struct Local {
    what: String,
    /// The export file, for an export source.
    export: Option<PathBuf>,
    /// The opened log: at once for a data directory; for an export, imported when first
    /// needed (`verify` reads the file alone, so a copy too broken to import still gets
    /// its verdict).
    opened: OnceCell<Opened>,
}

struct Opened {
    ledger: Arc<Ledger>,
    projections: Projections,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

impl Local {
    /// An export file; it is read when first asked.
    pub fn export_file(path: &Path) -> anyhow::Result<Local> {
        File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Local {
            what: format!("export file {}", path.display()),
            export: Some(path.to_path_buf()),
            opened: OnceCell::new(),
        })
    }

    /// Reads the export into a store in memory and projects it.
    fn import(path: &Path) -> anyhow::Result<Opened> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let pb = bar(len, "reading the export");
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        ledger::import::import(
            BufReader::with_capacity(1 << 20, pb.wrap_read(file)),
            &*store,
        )
        .with_context(|| format!("reading the export {}", path.display()))?;
        pb.finish_and_clear();
        let ledger = Arc::new(Ledger::open_read_only(store).context("opening the imported log")?);
        let projections =
            Projections::temporary(ledger.clone()).context("creating the projections")?;
        for app in ledger.apps() {
            projections
                .rebuild(&app, None)
                .with_context(|| format!("projecting app {app}"))?;
        }
        Ok(Opened {
            ledger,
            projections,
        })
    }

    /// The opened log.
    fn opened(&self) -> anyhow::Result<&Opened> {
        if let Some(o) = self.opened.get() {
            return Ok(o);
        }
        let path = self
            .export
            .as_ref()
            .ok_or_else(|| anyhow!("the {} is not open", self.what))?;
        let o = Self::import(path)?;
        Ok(self.opened.get_or_init(|| o))
    }

    /// Opens a data directory that no server holds.
    pub fn data_dir(dir: &Path) -> anyhow::Result<Local> {
        let store_dir = dir.join("store");
        if !store_dir.is_dir() {
            bail!(
                "{} is not a data directory: it has no store/ (give the directory the server was started with)",
                dir.display()
            );
        }
        let store = match SledStore::open_read_only(&store_dir) {
            Ok(s) => s,
            Err(StoreError::Locked { .. }) => bail!(
                "the data directory {} is in use by another process (a running server?): it cannot be read safely while it is written. Ask that server instead (--server URL), read an export of it (--export FILE), or stop the server first",
                dir.display()
            ),
            Err(e) => {
                return Err(anyhow!(e)).with_context(|| format!("opening {}", store_dir.display()))
            }
        };
        for b in store.behind_its_files() {
            eprintln!(
                "warning: {} was not closed cleanly: app {}'s files hold {} events, its record indexes end at event {}; events past {} are not shown. Start the server on this directory once (it restores every whole write past that event), stop it, then read it again.",
                dir.display(),
                b.app,
                b.held,
                b.head,
                b.head
            );
        }
        let ledger = Arc::new(
            Ledger::open_read_only(Arc::new(store))
                .with_context(|| format!("opening the log in {}", dir.display()))?,
        );
        let projections = Projections::open_dir(ledger.clone(), &dir.join("projections"))
            .with_context(|| format!("opening the projections in {}", dir.display()))?;
        Ok(Local {
            what: format!("data directory {}", dir.display()),
            export: None,
            opened: OnceCell::from(Opened {
                ledger,
                projections,
            }),
        })
    }
}

/// The apps an export's header names.
fn header_apps(path: &Path) -> anyhow::Result<Vec<String>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut first = String::new();
    BufReader::new(file)
        .read_line(&mut first)
        .with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_str(&first).map_err(|_| {
        anyhow!(
            "{} is not an export: its first line is not the JSON header",
            path.display()
        )
    })?;
    if v.get("type").and_then(Value::as_str) != Some("export") {
        bail!(
            "{} is not an export: its first line is not the export header",
            path.display()
        );
    }
    super::strings(&v, "apps")
        .ok_or_else(|| anyhow!("{}: the header does not list the apps", path.display()))
}

impl Source for Local {
    fn describe(&self) -> String {
        self.what.clone()
    }

    fn apps(&self) -> anyhow::Result<Vec<String>> {
        match &self.export {
            Some(path) => header_apps(path),
            None => Ok(self.opened()?.ledger.apps()),
        }
    }

    fn classes(&self, app: &str) -> anyhow::Result<Vec<String>> {
        let schema = self
            .opened()?
            .ledger
            .schema(app)
            .ok_or_else(|| anyhow!("app {app:?} is not in the {}", self.what))?;
        Ok(schema.classes.keys().cloned().collect())
    }

    fn verify(
        &self,
        apps: &[String],
        mode: VerifyMode,
        trusted: Option<Vec<PublicKey>>,
    ) -> anyhow::Result<Vec<VerifyReport>> {
        if let Some(path) = &self.export {
            // The file's own bytes, not the imported copy.
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let pb = bar(len, "verifying");
            let reports = ledger::export::verify_export(
                BufReader::with_capacity(1 << 20, pb.wrap_read(file)),
                mode,
                trusted,
            )?;
            pb.finish_and_clear();
            return Ok(reports
                .into_iter()
                .filter(|r| apps.contains(&r.app))
                .collect());
        }
        let mut out = Vec::new();
        for app in apps {
            let head = self
                .opened()?
                .ledger
                .head(app)
                .ok_or_else(|| anyhow!("app {app:?} is not in the {}", self.what))?;
            let pb = ProgressBar::new_spinner();
            pb.set_message(format!("verifying {app} ({} events)", head.seq));
            pb.enable_steady_tick(std::time::Duration::from_millis(120));
            let policy = VerifyPolicy {
                trusted_genesis: trusted.clone(),
                ..VerifyPolicy::default()
            };
            let r = self.opened()?.ledger.verify(app, mode, policy)?;
            pb.finish_and_clear();
            out.push(r);
        }
        Ok(out)
    }

    fn keys(&self, app: &str) -> anyhow::Result<Vec<KeyRow>> {
        Ok(self
            .opened()?
            .ledger
            .public_keys(app)?
            .into_iter()
            .map(|k| KeyRow {
                app: app.to_string(),
                key_id: k.key_id.to_string(),
                public_key: k.public_key,
                from_seq: k.from_seq,
                to_seq: k.to_seq,
            })
            .collect())
    }

    fn class_at(
        &self,
        app: &str,
        class: &str,
        where_: Option<&Value>,
        t: Timestamp,
    ) -> anyhow::Result<(u64, Vec<Map<String, Value>>)> {
        let filter = match where_ {
            None => None,
            Some(w) => {
                let def = self
                    .opened()?
                    .ledger
                    .schema(app)
                    .and_then(|s| s.class(class).cloned())
                    .ok_or_else(|| anyhow!("class {class} does not exist in app {app}"))?;
                let params = QueryParams {
                    where_: Some(w.clone()),
                    ..QueryParams::default()
                };
                Some(Query::parse(&def, &params).map_err(|e| anyhow!("--where: {e}"))?)
            }
        };
        let v = self
            .opened()?
            .projections
            .class_at(app, class, At::Time(t))?;
        let records = v
            .value
            .into_iter()
            .filter(|r| filter.as_ref().is_none_or(|q| q.matches(r)))
            .map(projections::Record::into_parse_json)
            .collect();
        Ok((v.seq, records))
    }

    fn day(&self, app: &str, day: &Day) -> anyhow::Result<DayReport> {
        Ok(self.opened()?.projections.day(app, day)?)
    }

    fn diff(
        &self,
        app: &str,
        class: Option<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> anyhow::Result<Diff> {
        Ok(self
            .opened()?
            .projections
            .diff(app, class, At::Time(from), At::Time(to))?)
    }

    fn history(&self, app: &str, class: &str, object_id: &str) -> anyhow::Result<History> {
        let h = self.opened()?.projections.history(app, class, object_id)?;
        if h.events.is_empty() {
            bail!("{class} {object_id}: no such record in app {app}");
        }
        Ok(h)
    }

    fn export(&self, apps: &[String], out: &mut dyn Write) -> anyhow::Result<u64> {
        Ok(self.opened()?.ledger.export(apps, out)?)
    }

    fn event_line(&self, app: &str, seq: u64) -> anyhow::Result<Value> {
        let e = self
            .opened()?
            .ledger
            .event(app, seq)?
            .ok_or_else(|| anyhow!("app {app} has no event {seq}"))?;
        Ok(serde_json::from_str(&ledger::export::event_line(&e))?)
    }

    fn inclusion(
        &self,
        app: &str,
        seq: u64,
        size: Option<u64>,
    ) -> anyhow::Result<(InclusionProof, Option<String>)> {
        let ledger = &self.opened()?.ledger;
        let (size, cp) = match size {
            Some(n) => (n, ledger.checkpoint_at(app, n)?),
            None => match ledger.latest_checkpoint(app)? {
                Some(cp) if cp.size() >= seq => (cp.size(), Some(cp)),
                _ => bail!(
                    "no checkpoint kept in the {} covers event {seq} of {app} (exports carry none): give --size N, or --checkpoint FILE with a checkpoint you hold, or ask the server (--server)",
                    self.what
                ),
            },
        };
        if seq == 0 || seq > size {
            bail!("event {seq} is not in a tree of {size} events");
        }
        let proof = ledger.inclusion_proof(app, seq, size)?;
        Ok((proof, cp.map(|c| c.text().to_string())))
    }

    fn consistency(
        &self,
        app: &str,
        from: u64,
        to: Option<u64>,
    ) -> anyhow::Result<(ConsistencyProof, Option<String>, Option<String>)> {
        let ledger = &self.opened()?.ledger;
        let to = match to {
            Some(n) => n,
            None => ledger
                .latest_checkpoint(app)?
                .map(|c| c.size())
                .ok_or_else(|| {
                    anyhow!(
                        "no checkpoint is kept in the {}: give the newer size (--to N)",
                        self.what
                    )
                })?,
        };
        if from == 0 || from > to {
            bail!("--from {from} must be between 1 and the newer size {to}");
        }
        let proof = ledger.consistency_proof(app, from, to)?;
        let text = |n| -> anyhow::Result<Option<String>> {
            Ok(ledger.checkpoint_at(app, n)?.map(|c| c.text().to_string()))
        };
        Ok((proof, text(from)?, text(to)?))
    }
}
