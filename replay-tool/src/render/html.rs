//! One self-contained HTML page (inline style, no scripts, no external files) that an
//! inspector can open and print: what was asked, from which source, the chain's
//! verification status and the signing keys' fingerprints first, then the report.

use ledger::verify::VerifyReport;

use crate::source::KeyRow;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Rows as an HTML table, the first row its header.
pub fn table(rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table>\n");
    if let Some((header, body)) = rows.split_first() {
        out.push_str("<thead><tr>");
        for h in header {
            out.push_str(&format!("<th>{}</th>", escape(h)));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for r in body {
            out.push_str("<tr>");
            for c in r {
                out.push_str(&format!("<td>{}</td>", escape(c)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n");
    }
    out.push_str("</table>\n");
    out
}

/// What the page says before its report.
pub struct Preamble<'a> {
    /// The page title (the question asked).
    pub title: &'a str,
    /// Where the log came from.
    pub source: &'a str,
    /// When the report was made (RFC 3339).
    pub generated: &'a str,
    /// Each app's verification.
    pub verification: &'a [VerifyReport],
    /// The keys of the apps shown.
    pub keys: &'a [KeyRow],
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;font-size:11pt;margin:2em;color:#111}\
h1{font-size:16pt}h2{font-size:13pt;margin-top:1.5em}h3{font-size:11pt}\
table{border-collapse:collapse;margin:.5em 0 1em;font-size:9pt}\
th,td{border:1px solid #999;padding:2px 6px;text-align:left;vertical-align:top}\
th{background:#eee}.ok{color:#060;font-weight:bold}.bad{color:#a00;font-weight:bold}\
code{font-size:9pt;word-break:break-all}@media print{body{margin:0}}";

/// The whole page.
pub fn page(p: &Preamble<'_>, body: &str) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n<p>Source: {source}. Generated {generated} by ledger-replay {version}.</p>\n",
        title = escape(p.title),
        source = escape(p.source),
        generated = escape(p.generated),
        version = env!("CARGO_PKG_VERSION"),
    );
    out.push_str("<h2>Chain verification</h2>\n");
    let mut rows = vec![vec![
        "app".to_string(),
        "status".into(),
        "events".into(),
        "first event".into(),
        "last event".into(),
        "last hash".into(),
    ]];
    for r in p.verification {
        rows.push(vec![
            r.app.clone(),
            match &r.failure {
                None => "verified".into(),
                Some(f) => format!("FAILED at {f}"),
            },
            r.verified.to_string(),
            r.first_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
            r.last_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
            r.last_hash.clone().unwrap_or_default(),
        ]);
    }
    let all_ok = p.verification.iter().all(VerifyReport::ok);
    out.push_str(&format!(
        "<p class=\"{}\">{}</p>\n",
        if all_ok { "ok" } else { "bad" },
        if all_ok {
            "Every event's hash, link and signature verified (full verification)."
        } else {
            "The chain does NOT verify: the records below cannot be trusted past the failure."
        }
    ));
    out.push_str(&table(&rows));
    out.push_str("<h2>Signing keys</h2>\n");
    let mut rows = vec![vec![
        "app".to_string(),
        "key id".into(),
        "ed25519 public key".into(),
        "signs events".into(),
    ]];
    for k in p.keys {
        rows.push(vec![
            k.app.clone(),
            k.key_id.clone(),
            k.public_key.clone(),
            match k.to_seq {
                Some(to) => format!("{} to {to}", k.from_seq),
                None => format!("{} onwards", k.from_seq),
            },
        ]);
    }
    out.push_str(&table(&rows));
    out.push_str(body);
    out.push_str("</body>\n</html>\n");
    out
}
