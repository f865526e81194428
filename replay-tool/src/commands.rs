//! Each command: check its input, ask the source, print the answer in the chosen format.
//! Bad input (a time expression, a zone, a filter, a format a command does not have) is
//! refused before the source is opened, naming the input and what is accepted.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use ledger::verify::VerifyReport;
use ledger::{Clock, PublicKey, SystemClock, Timestamp, VerifyMode};
use projections::report::{DayReport, Diff, History};
use projections::table::{self, EVENT_COLUMNS};
use projections::when::{self, Day, When};
use serde::Serialize;
use serde_json::Value;

use crate::cli::{Args, Command, ProveWhat};
use crate::proofs::{self, ProofFile, ProvedEvent};
use crate::render::{self, html, Format};
use crate::source::{AtReport, ClassAt, Credentials, KeyRow, Local, Remote, Source};

/// What changed in one app between two instants.
#[derive(Serialize)]
struct DiffReport {
    app: String,
    from: String,
    to: String,
    #[serde(flatten)]
    diff: Diff,
}

/// One record's history in one app.
#[derive(Serialize)]
struct HistoryReport {
    app: String,
    #[serde(flatten)]
    history: History,
}

/// Opens the source the arguments name.
pub fn open_source(args: &Args) -> anyhow::Result<Box<dyn Source>> {
    if let Some(path) = &args.export {
        return Ok(Box::new(Local::export_file(path)?));
    }
    if let Some(dir) = &args.data_dir {
        return Ok(Box::new(Local::data_dir(dir)?));
    }
    if let Some(url) = &args.server {
        let password = args
            .password
            .clone()
            .or_else(|| std::env::var("LEDGER_REPLAY_PASSWORD").ok());
        return Ok(Box::new(Remote::new(
            url,
            Credentials {
                username: args.user.clone(),
                password,
                token: args.token.clone(),
            },
            args.page_size,
        )?));
    }
    bail!("give a source: --export FILE, --data-dir DIR or --server URL")
}

/// The context every command shares: zone, "now", the parsed time expressions.
struct Ctx {
    tz: chrono_tz::Tz,
    now: Timestamp,
}

impl Ctx {
    fn when(&self, name: &str, expr: &str) -> anyhow::Result<When> {
        when::parse(expr, self.now, self.tz).map_err(|e| anyhow!("{name}: {e}"))
    }
}

/// Runs the command; the exit code says whether what was checked verified.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let tz = when::parse_tz(&args.tz).map_err(|e| anyhow!("--tz: {e}"))?;
    let now = match &args.now {
        Some(s) => Timestamp::parse_rfc3339(s).ok_or_else(|| {
            anyhow!("--now: {s:?} is not an RFC 3339 instant (e.g. 2026-11-17T09:30:00Z)")
        })?,
        None => SystemClock.now(),
    };
    let ctx = Ctx { tz, now };
    let html_ok = matches!(args.command, Command::Day { .. } | Command::At { .. });
    if args.format == Format::Html && !html_ok {
        bail!("--format html: only `day` and `at` make an HTML report (use table, json or csv)");
    }
    if let Command::CheckProof {
        file,
        keys,
        old_checkpoint,
    } = &args.command
    {
        return check_proof(file, keys, old_checkpoint.as_deref());
    }
    // Inputs are checked before the source is opened (an export may take a while).
    let plan = Plan::new(args, &ctx)?;
    let source = open_source(args)?;
    let apps = apps(&*source, args.app.as_deref())?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let code = plan.execute(&*source, &apps, args, &ctx, &mut *out)?;
    out.flush()?;
    Ok(code)
}

fn apps(source: &dyn Source, only: Option<&str>) -> anyhow::Result<Vec<String>> {
    let all = source.apps()?;
    match only {
        None => Ok(all),
        Some(a) if all.iter().any(|x| x == a) => Ok(vec![a.to_string()]),
        Some(a) => bail!(
            "--app {a:?}: no such app in the {} (it holds {})",
            source.describe(),
            all.join(", ")
        ),
    }
}

/// A command with its inputs checked.
enum Plan {
    Verify {
        mode: VerifyMode,
        trusted: Option<Vec<PublicKey>>,
    },
    At {
        t: Timestamp,
        class: Option<String>,
        where_: Option<Value>,
    },
    Day {
        day: Day,
    },
    Diff {
        from: Timestamp,
        to: Timestamp,
        class: Option<String>,
    },
    History {
        class: String,
        object_id: String,
    },
    Export,
    Keys,
    Prove {
        what: ProveWhat,
        checkpoint: Option<ledger::Checkpoint>,
    },
}

/// A 32-byte ed25519 public key from its hex, or an error naming the option.
fn public_key(option: &str, hex_key: &str) -> anyhow::Result<PublicKey> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(hex_key.trim(), &mut b).map_err(|_| {
        anyhow!("{option} {hex_key:?}: give the 64 hex digits of an ed25519 public key")
    })?;
    Ok(PublicKey::from_bytes(b))
}

fn read_checkpoint(option: &str, path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{option}: reading {}", path.display()))?;
    ledger::Checkpoint::parse(&text)
        .map_err(|e| anyhow!("{option} {}: not a checkpoint: {e}", path.display()))?;
    Ok(text)
}

/// `check-proof`: needs no source.
fn check_proof(
    file: &std::path::Path,
    keys: &[String],
    old_checkpoint: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let keys = keys
        .iter()
        .map(|k| public_key("--key", k))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let proof: ProofFile = serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{} is not a proof file (docs/FORMAT.md §8.7): {e}",
            file.display()
        )
    })?;
    let kept = old_checkpoint
        .map(|p| read_checkpoint("--old-checkpoint", p))
        .transpose()?;
    if kept.is_some() && !matches!(proof, ProofFile::Consistency { .. }) {
        bail!("--old-checkpoint: only a consistency proof has an older checkpoint");
    }
    match proofs::check(&proof, &keys, kept.as_deref()) {
        Ok(c) => {
            println!("proof holds: app {}: {}", c.app, c.statement);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("ledger-replay: the proof does NOT hold: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

impl Plan {
    fn new(args: &Args, ctx: &Ctx) -> anyhow::Result<Plan> {
        Ok(match &args.command {
            Command::Verify {
                links_only,
                trusted_key,
            } => {
                let trusted = if trusted_key.is_empty() {
                    None
                } else {
                    let keys = trusted_key
                        .iter()
                        .map(|k| public_key("--trusted-key", k))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    Some(keys)
                };
                let mode = if *links_only {
                    VerifyMode::LinksOnly
                } else {
                    VerifyMode::Full
                };
                Plan::Verify { mode, trusted }
            }
            Command::At {
                when,
                class,
                where_,
            } => {
                let where_ = match where_ {
                    None => None,
                    Some(text) => {
                        if class.is_none() {
                            bail!("--where: a filter applies to one class; give --class too");
                        }
                        let v: Value = serde_json::from_str(text)
                            .map_err(|e| anyhow!("--where {text:?} is not JSON: {e}"))?;
                        if !v.is_object() {
                            bail!("--where {text:?}: give a JSON object, e.g. '{{\"result\":\"fail\"}}'");
                        }
                        Some(v)
                    }
                };
                Plan::At {
                    t: ctx.when("WHEN", when)?.instant(),
                    class: class.clone(),
                    where_,
                }
            }
            Command::Day { when } => Plan::Day {
                day: ctx
                    .when("WHEN", when)?
                    .day(ctx.tz)
                    .map_err(|e| anyhow!("WHEN: {e}"))?,
            },
            Command::Diff { t1, t2, class } => {
                let from = ctx.when("T1", t1)?.instant();
                let to = ctx.when("T2", t2)?.instant();
                if from > to {
                    bail!("T1 ({from}) is after T2 ({to}): give the earlier instant first");
                }
                Plan::Diff {
                    from,
                    to,
                    class: class.clone(),
                }
            }
            Command::History { class, object_id } => Plan::History {
                class: class.clone(),
                object_id: object_id.clone(),
            },
            Command::Export => Plan::Export,
            Command::Keys => Plan::Keys,
            Command::Prove { what, checkpoint } => {
                if args.app.is_none() {
                    bail!("prove: give the app (--app)");
                }
                let checkpoint = match checkpoint {
                    None => None,
                    Some(path) => {
                        let text = read_checkpoint("--checkpoint", path)?;
                        let cp = ledger::Checkpoint::parse(&text)
                            .map_err(|e| anyhow!("--checkpoint: {e}"))?;
                        if cp.app() != args.app.as_deref() {
                            bail!(
                                "--checkpoint {}: it is a checkpoint of {}, not of app {}",
                                path.display(),
                                cp.origin(),
                                args.app.as_deref().unwrap_or_default()
                            );
                        }
                        Some(cp)
                    }
                };
                Plan::Prove {
                    what: what.clone(),
                    checkpoint,
                }
            }
            Command::CheckProof { .. } => bail!("check-proof needs no source"),
        })
    }

    fn execute(
        self,
        source: &dyn Source,
        apps: &[String],
        args: &Args,
        ctx: &Ctx,
        out: &mut dyn Write,
    ) -> anyhow::Result<ExitCode> {
        let format = args.format;
        match self {
            Plan::Verify { mode, trusted } => {
                let reports = source.verify(apps, mode, trusted)?;
                print_verify(out, format, &reports)?;
                let mut code = ExitCode::SUCCESS;
                for r in &reports {
                    if let Some(f) = &r.failure {
                        eprintln!("ledger-replay: app {}: {f}", r.app);
                        code = ExitCode::from(1);
                    }
                }
                Ok(code)
            }
            Plan::Keys => {
                let mut keys = Vec::new();
                for app in apps {
                    keys.extend(source.keys(app)?);
                }
                print_keys(out, format, &keys)?;
                Ok(ExitCode::SUCCESS)
            }
            Plan::Export => {
                let n = source.export(apps, out)?;
                eprintln!("ledger-replay: exported {n} events of {}", apps.join(", "));
                Ok(ExitCode::SUCCESS)
            }
            Plan::At { t, class, where_ } => {
                let mut reports = Vec::new();
                for app in apps {
                    let classes = source.classes(app)?;
                    let wanted: Vec<String> = match &class {
                        Some(c) if classes.contains(c) => vec![c.clone()],
                        Some(_) => continue,
                        // Every class of the app's own schema; system classes (_User…)
                        // only when asked for by name.
                        None => classes
                            .into_iter()
                            .filter(|c| !c.starts_with('_'))
                            .collect(),
                    };
                    let mut report = AtReport {
                        app: app.clone(),
                        at: t.to_rfc3339(),
                        seq: 0,
                        where_: where_.clone(),
                        classes: Vec::new(),
                    };
                    for c in wanted {
                        let (seq, records) = source.class_at(app, &c, where_.as_ref(), t)?;
                        report.seq = seq;
                        report.classes.push(ClassAt { class: c, records });
                    }
                    reports.push(report);
                }
                if reports.is_empty() {
                    bail!(
                        "--class {:?}: no app of the {} has that class",
                        class.unwrap_or_default(),
                        source.describe()
                    );
                }
                print_at(out, format, &reports, source, ctx)?;
                Ok(ExitCode::SUCCESS)
            }
            Plan::Day { day } => {
                let reports = apps
                    .iter()
                    .map(|app| source.day(app, &day))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                print_day(out, format, &reports, source, ctx)?;
                Ok(ExitCode::SUCCESS)
            }
            Plan::Diff { from, to, class } => {
                let mut reports = Vec::new();
                for app in apps {
                    if let Some(c) = &class {
                        if !source.classes(app)?.contains(c) {
                            continue;
                        }
                    }
                    reports.push(DiffReport {
                        app: app.clone(),
                        from: from.to_rfc3339(),
                        to: to.to_rfc3339(),
                        diff: source.diff(app, class.as_deref(), from, to)?,
                    });
                }
                if reports.is_empty() {
                    bail!(
                        "--class {:?}: no app of the {} has that class",
                        class.unwrap_or_default(),
                        source.describe()
                    );
                }
                print_diff(out, format, &reports)?;
                Ok(ExitCode::SUCCESS)
            }
            Plan::Prove { what, checkpoint } => {
                let app = apps
                    .first()
                    .ok_or_else(|| anyhow!("prove: give the app (--app)"))?;
                let file = prove(source, app, what, checkpoint)?;
                render::json(out, &file)?;
                Ok(ExitCode::SUCCESS)
            }
            Plan::History { class, object_id } => {
                let mut found = Vec::new();
                let mut last_err = None;
                for app in apps {
                    if !source.classes(app)?.contains(&class) {
                        continue;
                    }
                    match source.history(app, &class, &object_id) {
                        Ok(history) => found.push(HistoryReport {
                            app: app.clone(),
                            history,
                        }),
                        Err(e) => last_err = Some(e),
                    }
                }
                if found.is_empty() {
                    return Err(last_err.unwrap_or_else(|| {
                        anyhow!(
                            "class {class:?}: no app of the {} has that class",
                            source.describe()
                        )
                    }));
                }
                print_history(out, format, &found)?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn print_verify(
    out: &mut dyn Write,
    format: Format,
    reports: &[VerifyReport],
) -> anyhow::Result<()> {
    if format == Format::Json {
        return render::json(out, &reports);
    }
    let mut rows = vec![[
        "app",
        "mode",
        "status",
        "events",
        "last_seq",
        "first_time",
        "last_time",
        "first_hash",
        "last_hash",
        "keys",
        "redacted",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for r in reports {
        rows.push(vec![
            r.app.clone(),
            match r.mode {
                VerifyMode::Full => "full".into(),
                VerifyMode::LinksOnly => "links-only".into(),
            },
            match &r.failure {
                None => "verified".into(),
                Some(f) => format!("FAILED: {f}"),
            },
            r.verified.to_string(),
            r.last_seq.to_string(),
            r.first_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
            r.last_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
            r.first_hash.clone().unwrap_or_default(),
            r.last_hash.clone().unwrap_or_default(),
            r.keys
                .iter()
                .map(|k| k.key_id.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            r.redacted.to_string(),
        ]);
    }
    match format {
        Format::Csv => render::csv(out, &rows),
        _ => {
            let events: u64 = reports.iter().map(|r| r.verified).sum();
            let first = reports.iter().filter_map(|r| r.first_time).min();
            let last = reports.iter().filter_map(|r| r.last_time).max();
            let keys: usize = reports.iter().map(|r| r.keys.len()).sum();
            writeln!(out, "{}", render::table(&rows))?;
            writeln!(
                out,
                "{} of {} apps verified: {events} events, {keys} keys, recorded {} to {}.",
                reports.iter().filter(|r| r.ok()).count(),
                reports.len(),
                first.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
                last.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
            )?;
            Ok(())
        }
    }
}

fn key_rows(keys: &[KeyRow]) -> Vec<Vec<String>> {
    let mut rows = vec![["app", "key_id", "public_key", "from_seq", "to_seq"]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
    for k in keys {
        rows.push(vec![
            k.app.clone(),
            k.key_id.clone(),
            k.public_key.clone(),
            k.from_seq.to_string(),
            k.to_seq.map(|s| s.to_string()).unwrap_or_default(),
        ]);
    }
    rows
}

fn print_keys(out: &mut dyn Write, format: Format, keys: &[KeyRow]) -> anyhow::Result<()> {
    match format {
        Format::Json => render::json(out, &keys),
        Format::Csv => render::csv(out, &key_rows(keys)),
        _ => Ok(writeln!(out, "{}", render::table(&key_rows(keys)))?),
    }
}

/// The preamble of an HTML report: full verification and keys of the apps shown.
fn html_page(
    source: &dyn Source,
    apps: &[String],
    title: &str,
    ctx: &Ctx,
    body: &str,
) -> anyhow::Result<String> {
    let verification = source.verify(apps, VerifyMode::Full, None)?;
    let mut keys = Vec::new();
    for app in apps {
        keys.extend(source.keys(app)?);
    }
    Ok(html::page(
        &html::Preamble {
            title,
            source: &source.describe(),
            generated: &ctx.now.to_rfc3339(),
            verification: &verification,
            keys: &keys,
        },
        body,
    ))
}

fn print_at(
    out: &mut dyn Write,
    format: Format,
    reports: &[AtReport],
    source: &dyn Source,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    match format {
        Format::Json => render::json(out, &reports),
        Format::Csv => {
            // One header for all: app, class, then the union of every class's fields.
            let mut tagged = Vec::new();
            let mut objects = Vec::new();
            for r in reports {
                for c in &r.classes {
                    for o in &c.records {
                        tagged.push((r.app.as_str(), c.class.as_str()));
                        objects.push(o);
                    }
                }
            }
            let rows = table::object_rows(&objects);
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .enumerate()
                .map(|(i, mut row)| {
                    let (app, class) = match i {
                        0 => ("app", "class"),
                        n => tagged[n - 1],
                    };
                    row.insert(0, class.to_string());
                    row.insert(0, app.to_string());
                    row
                })
                .collect();
            render::csv(out, &rows)
        }
        Format::Table => {
            for r in reports {
                writeln!(out, "{} as of {} (events 1 to {})", r.app, r.at, r.seq)?;
                for c in &r.classes {
                    writeln!(out, "\n{}: {} records", c.class, c.records.len())?;
                    if !c.records.is_empty() {
                        writeln!(
                            out,
                            "{}",
                            render::table(&table::object_rows(
                                &c.records.iter().collect::<Vec<_>>()
                            ))
                        )?;
                    }
                }
                writeln!(out)?;
            }
            Ok(())
        }
        Format::Html => {
            let mut body = String::new();
            for r in reports {
                body.push_str(&format!(
                    "<h2>{} as of {} (events 1 to {})</h2>\n",
                    html::escape(&r.app),
                    html::escape(&r.at),
                    r.seq
                ));
                if let Some(w) = &r.where_ {
                    body.push_str(&format!(
                        "<p>Filter: <code>{}</code></p>\n",
                        html::escape(&w.to_string())
                    ));
                }
                for c in &r.classes {
                    body.push_str(&format!(
                        "<h3>{}: {} records</h3>\n",
                        html::escape(&c.class),
                        c.records.len()
                    ));
                    if !c.records.is_empty() {
                        body.push_str(&html::table(&table::object_rows(
                            &c.records.iter().collect::<Vec<_>>(),
                        )));
                    }
                }
            }
            let apps: Vec<String> = reports.iter().map(|r| r.app.clone()).collect();
            let title = format!(
                "Records as they stood at {}",
                reports.first().map(|r| r.at.as_str()).unwrap_or_default()
            );
            out.write_all(html_page(source, &apps, &title, ctx, &body)?.as_bytes())?;
            Ok(())
        }
    }
}

fn summary_rows(r: &DayReport) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut by_kind = vec![vec!["class".to_string(), "kind".into(), "events".into()]];
    for (class, kinds) in &r.summary.by_class_and_kind {
        for (kind, n) in kinds {
            by_kind.push(vec![class.clone(), kind.clone(), n.to_string()]);
        }
    }
    let mut by_actor = vec![vec!["actor".to_string(), "events".into()]];
    for (actor, n) in &r.summary.by_actor {
        by_actor.push(vec![actor.clone(), n.to_string()]);
    }
    (by_kind, by_actor)
}

fn day_heading(r: &DayReport) -> String {
    format!(
        "{}: {} ({}), {} to {}: {} events{}",
        r.app,
        r.date,
        r.tz,
        r.start.to_rfc3339(),
        r.end.to_rfc3339(),
        r.summary.events,
        match r.seq_range {
            Some((a, b)) => format!(" (events {a} to {b})"),
            None => String::new(),
        }
    )
}

fn group_heading(class: Option<&str>, object_id: Option<&str>) -> String {
    match (class, object_id) {
        (Some(c), Some(o)) => format!("{c} {o}"),
        (Some(c), None) => c.to_string(),
        _ => "events without a record (logins, refusals, app events)".into(),
    }
}

fn group_rows(events: &[projections::report::EventEntry]) -> Vec<Vec<String>> {
    let mut rows = vec![EVENT_COLUMNS.iter().map(|s| s.to_string()).collect()];
    for e in events {
        table::event_rows(e, &mut rows);
    }
    rows
}

fn print_day(
    out: &mut dyn Write,
    format: Format,
    reports: &[DayReport],
    source: &dyn Source,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    match format {
        Format::Json => render::json(out, &reports),
        Format::Csv => {
            let rows = render::per_app(reports.iter().map(|r| (r.app.clone(), table::day_rows(r))));
            render::csv(out, &rows)
        }
        Format::Table => {
            for r in reports {
                writeln!(out, "{}", day_heading(r))?;
                if r.summary.events == 0 {
                    writeln!(out)?;
                    continue;
                }
                let (by_kind, by_actor) = summary_rows(r);
                writeln!(out, "{}", render::table(&by_kind))?;
                writeln!(out, "{}", render::table(&by_actor))?;
                for g in &r.records {
                    writeln!(
                        out,
                        "\n{}",
                        group_heading(g.class.as_deref(), g.object_id.as_deref())
                    )?;
                    writeln!(out, "{}", render::table(&group_rows(&g.events)))?;
                }
                writeln!(out)?;
            }
            Ok(())
        }
        Format::Html => {
            let mut body = String::new();
            for r in reports {
                body.push_str(&format!("<h2>{}</h2>\n", html::escape(&day_heading(r))));
                if r.summary.events == 0 {
                    body.push_str("<p>Nothing was recorded that day.</p>\n");
                    continue;
                }
                let (by_kind, by_actor) = summary_rows(r);
                body.push_str("<h3>Summary by class and kind</h3>\n");
                body.push_str(&html::table(&by_kind));
                body.push_str("<h3>Summary by actor</h3>\n");
                body.push_str(&html::table(&by_actor));
                for g in &r.records {
                    body.push_str(&format!(
                        "<h3>{}</h3>\n",
                        html::escape(&group_heading(g.class.as_deref(), g.object_id.as_deref()))
                    ));
                    body.push_str(&html::table(&group_rows(&g.events)));
                }
            }
            let apps: Vec<String> = reports.iter().map(|r| r.app.clone()).collect();
            let title = match reports.first() {
                Some(r) => format!("What happened on {} ({})", r.date, r.tz),
                None => "What happened".into(),
            };
            out.write_all(html_page(source, &apps, &title, ctx, &body)?.as_bytes())?;
            Ok(())
        }
    }
}

fn print_diff(out: &mut dyn Write, format: Format, reports: &[DiffReport]) -> anyhow::Result<()> {
    match format {
        Format::Json => render::json(out, &reports),
        Format::Csv => {
            let rows = render::per_app(
                reports
                    .iter()
                    .map(|r| (r.app.clone(), table::diff_rows(&r.diff))),
            );
            render::csv(out, &rows)
        }
        _ => {
            for r in reports {
                writeln!(
                    out,
                    "{}: from {} (event {}) to {} (event {}): {} records changed",
                    r.app,
                    r.from,
                    r.diff.from_seq,
                    r.to,
                    r.diff.to_seq,
                    r.diff.records.len()
                )?;
                if !r.diff.records.is_empty() {
                    writeln!(out, "{}", render::table(&table::diff_rows(&r.diff)))?;
                }
                writeln!(out)?;
            }
            Ok(())
        }
    }
}

fn print_history(
    out: &mut dyn Write,
    format: Format,
    reports: &[HistoryReport],
) -> anyhow::Result<()> {
    match format {
        Format::Json => render::json(out, &reports),
        Format::Csv => {
            let rows = render::per_app(
                reports
                    .iter()
                    .map(|r| (r.app.clone(), table::history_rows(&r.history))),
            );
            render::csv(out, &rows)
        }
        _ => {
            for r in reports {
                writeln!(
                    out,
                    "{} {} {}: {} events (as of event {})",
                    r.app,
                    r.history.class,
                    r.history.object_id,
                    r.history.events.len(),
                    r.history.seq
                )?;
                writeln!(out, "{}", render::table(&table::history_rows(&r.history)))?;
            }
            Ok(())
        }
    }
}

/// The size a proof is made at, and the checkpoint text to ship with it: the one given,
/// or the one the source kept.
fn pinned(
    checkpoint: &Option<ledger::Checkpoint>,
    size: Option<u64>,
) -> anyhow::Result<Option<u64>> {
    match (checkpoint, size) {
        (Some(cp), Some(n)) if n != cp.size() => bail!(
            "--size {n} differs from the size of the checkpoint given ({})",
            cp.size()
        ),
        (Some(cp), _) => Ok(Some(cp.size())),
        (None, n) => Ok(n),
    }
}

fn shipped(
    given: &Option<ledger::Checkpoint>,
    kept: Option<String>,
    size: u64,
) -> anyhow::Result<String> {
    match (given, kept) {
        (Some(cp), _) => Ok(cp.text().to_string()),
        (None, Some(text)) => Ok(text),
        (None, None) => bail!(
            "no checkpoint of size {size} is kept: prove at the size of a checkpoint (omit --size), or give --checkpoint FILE"
        ),
    }
}

/// Builds a proof file.
fn prove(
    source: &dyn Source,
    app: &str,
    what: ProveWhat,
    checkpoint: Option<ledger::Checkpoint>,
) -> anyhow::Result<ProofFile> {
    match what {
        ProveWhat::Inclusion { seq, size } => {
            let (proof, kept) = source.inclusion(app, seq, pinned(&checkpoint, size)?)?;
            let text = shipped(&checkpoint, kept, proof.tree_size)?;
            Ok(ProofFile::Inclusion {
                event: source.event_line(app, seq)?,
                inclusion: proof,
                checkpoint: text,
            })
        }
        ProveWhat::Record {
            class,
            object_id,
            size,
        } => {
            let history = source.history(app, &class, &object_id)?;
            let first = history
                .events
                .first()
                .ok_or_else(|| anyhow!("{class} {object_id}: no events"))?;
            // One size for all: the checkpoint's, which must cover the last event.
            let (probe, kept) = source.inclusion(app, first.seq, pinned(&checkpoint, size)?)?;
            let size = probe.tree_size;
            let text = shipped(&checkpoint, kept, size)?;
            let mut events = Vec::with_capacity(history.events.len());
            for e in &history.events {
                if e.seq > size {
                    bail!(
                        "{class} {object_id}: event {} is newer than the checkpoint (size {size}); ask for a newer checkpoint",
                        e.seq
                    );
                }
                let proof = if e.seq == first.seq {
                    probe.clone()
                } else {
                    source.inclusion(app, e.seq, Some(size))?.0
                };
                events.push(ProvedEvent {
                    event: source.event_line(app, e.seq)?,
                    proof,
                });
            }
            Ok(ProofFile::Record {
                app: app.to_string(),
                class,
                object_id,
                events,
                checkpoint: text,
            })
        }
        ProveWhat::Consistency { from, to } => {
            let (proof, old, new) = source.consistency(app, from, pinned(&checkpoint, to)?)?;
            let new = shipped(&checkpoint, new, proof.new_size)?;
            Ok(ProofFile::Consistency {
                consistency: proof,
                old_checkpoint: old,
                checkpoint: new,
            })
        }
    }
}
