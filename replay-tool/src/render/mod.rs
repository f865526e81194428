//! Output: readable tables for a terminal (comfy-table), JSON, CSV, and one printable
//! HTML page ([`html`]) for `day` and `at`. The rows come from
//! [`projections::table`], the same the server's CSV answers use.

pub mod html;

use std::io::Write;

use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables for reading on a terminal.
    Table,
    /// JSON (pretty-printed), the same structures the server answers with.
    Json,
    /// CSV for spreadsheets: a header row, then one row per changed field.
    Csv,
    /// One self-contained HTML page to open and print (`day` and `at`).
    Html,
}

/// A table of rows, the first row its header.
pub fn table(rows: &[Vec<String>]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .force_no_tty();
    if let Some((header, body)) = rows.split_first() {
        t.set_header(header.clone());
        for r in body {
            t.add_row(r.clone());
        }
    }
    t.to_string()
}

/// Rows as CSV.
pub fn csv(out: &mut dyn Write, rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    for r in rows {
        w.write_record(r)?;
    }
    w.flush()?;
    Ok(())
}

/// A value as pretty JSON, with a final newline.
pub fn json(out: &mut dyn Write, v: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Prefixes every row with a column: its name in the header row, `value` in the others.
fn with_column(rows: Vec<Vec<String>>, name: &str, value: &str) -> Vec<Vec<String>> {
    rows.into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.insert(0, if i == 0 { name.into() } else { value.into() });
            r
        })
        .collect()
}

/// Each app's rows (header first) under one header, with an `app` column in front.
pub fn per_app(parts: impl IntoIterator<Item = (String, Vec<Vec<String>>)>) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (app, part) in parts {
        let mut part = with_column(part, "app", &app);
        if !rows.is_empty() {
            part.remove(0);
        }
        rows.extend(part);
    }
    rows
}
