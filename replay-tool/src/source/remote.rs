//! A running server, through its HTTP API (docs/API.md): the ledger routes under
//! `/ledger/{app}` with a session from `/parse/login` (or a session token given).
//!
//! Reports (a class at an instant, a day, a diff, a history) are the server's answers.
//! Verification is not: `verify` downloads each app's export and checks it here, so a
//! server cannot vouch for itself. Relative times are resolved here, before asking, so
//! the server's clock does not change the question.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use ledger::verify::VerifyReport;
use ledger::{ConsistencyProof, InclusionProof, PublicKey, Timestamp, VerifyMode};
use projections::report::{DayReport, Diff, History};
use projections::when::Day;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::{KeyRow, Source};

/// How to sign in.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// A username (with `password`): a session is opened per app.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<String>,
    /// A session token to use as it is.
    pub token: Option<String>,
}

/// Most records the server returns in one answer.
const MAX_PAGE: usize = 10_000;

/// A server source.
pub struct Remote {
    base: String,
    agent: ureq::Agent,
    credentials: Credentials,
    page: usize,
    sessions: RefCell<HashMap<String, String>>,
}

/// A server error's message: its Parse `{code, error}` when it sent one.
fn server_error(e: ureq::Error, what: &str) -> anyhow::Error {
    match e {
        ureq::Error::Status(status, resp) => {
            let body: Value = resp.into_json().unwrap_or(Value::Null);
            let msg = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            match body.get("code").and_then(Value::as_u64) {
                Some(code) => anyhow!("{what}: the server answered {status} (code {code}): {msg}"),
                None => anyhow!("{what}: the server answered {status}: {msg}"),
            }
        }
        ureq::Error::Transport(t) => anyhow!("{what}: cannot reach the server: {t}"),
    }
}

/// Percent-encodes a path segment.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Remote {
    /// A server at `base` (`http://host:port`), signing in with `credentials`.
    /// Class reads fetch `page` records per request.
    pub fn new(base: &str, credentials: Credentials, page: usize) -> anyhow::Result<Remote> {
        if page == 0 || page > MAX_PAGE {
            bail!("--page-size {page}: give 1 to {MAX_PAGE}");
        }
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--server {base:?}: give a URL such as http://127.0.0.1:8080");
        }
        if credentials.token.is_none()
            && (credentials.username.is_none() || credentials.password.is_none())
        {
            bail!("--server needs --user and --password (or LEDGER_REPLAY_PASSWORD), or --token");
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(300))
            .build();
        Ok(Remote {
            base,
            agent,
            credentials,
            page,
            sessions: RefCell::new(HashMap::new()),
        })
    }

    /// The session token for `app`: given, or opened by logging in once.
    fn session(&self, app: &str) -> anyhow::Result<String> {
        if let Some(t) = &self.credentials.token {
            return Ok(t.clone());
        }
        if let Some(t) = self.sessions.borrow().get(app) {
            return Ok(t.clone());
        }
        let (Some(user), Some(password)) = (&self.credentials.username, &self.credentials.password)
        else {
            bail!("no credentials");
        };
        let resp = self
            .agent
            .post(&format!("{}/parse/login", self.base))
            .set("X-Parse-Application-Id", app)
            .send_json(json!({"username": user, "password": password}))
            .map_err(|e| server_error(e, &format!("logging in to app {app} as {user}")))?;
        let body: Value = resp.into_json().context("reading the login answer")?;
        let token = body
            .get("sessionToken")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("the login answer has no sessionToken"))?
            .to_string();
        self.sessions
            .borrow_mut()
            .insert(app.to_string(), token.clone());
        Ok(token)
    }

    /// `GET /ledger/{app}/{path}` with the app's session.
    fn get(
        &self,
        app: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<ureq::Response> {
        let token = self.session(app)?;
        let mut req = self
            .agent
            .get(&format!("{}/ledger/{}/{path}", self.base, segment(app)))
            .set("Authorization", &format!("Bearer {token}"));
        for (k, v) in query {
            req = req.query(k, v);
        }
        req.call()
            .map_err(|e| server_error(e, &format!("GET /ledger/{app}/{path}")))
    }

    fn get_json<T: DeserializeOwned>(
        &self,
        app: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        self.get(app, path, query)?
            .into_json()
            .with_context(|| format!("reading the answer of /ledger/{app}/{path}"))
    }

    /// Streams the app's export (header line included).
    fn export_reader(&self, app: &str) -> anyhow::Result<Box<dyn Read + Send + Sync>> {
        Ok(self.get(app, "export", &[])?.into_reader())
    }
}

impl Source for Remote {
    fn describe(&self) -> String {
        format!("server {}", self.base)
    }

    fn apps(&self) -> anyhow::Result<Vec<String>> {
        let body: Value = self
            .agent
            .get(&format!("{}/health", self.base))
            .call()
            .map_err(|e| server_error(e, "GET /health"))?
            .into_json()
            .context("reading /health")?;
        super::strings(&body, "apps").ok_or_else(|| anyhow!("/health does not list the apps"))
    }

    fn classes(&self, app: &str) -> anyhow::Result<Vec<String>> {
        let body: Value = self.get_json(app, "schema", &[])?;
        let mut names: Vec<String> = body
            .pointer("/schema/classes")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("/ledger/{app}/schema has no classes"))?
            .iter()
            .filter_map(|c| c.get("className").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        names.sort();
        Ok(names)
    }

    fn verify(
        &self,
        apps: &[String],
        mode: VerifyMode,
        trusted: Option<Vec<PublicKey>>,
    ) -> anyhow::Result<Vec<VerifyReport>> {
        let mut out = Vec::new();
        for app in apps {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.set_message(format!("downloading and verifying {app}"));
            pb.enable_steady_tick(Duration::from_millis(120));
            let reader = BufReader::new(pb.wrap_read(self.export_reader(app)?));
            let reports = ledger::export::verify_export(reader, mode, trusted.clone())
                .with_context(|| format!("the export of app {app} from {}", self.base))?;
            pb.finish_and_clear();
            out.extend(reports);
        }
        Ok(out)
    }

    fn keys(&self, app: &str) -> anyhow::Result<Vec<KeyRow>> {
        let body: Value = self.get_json(app, "keys", &[])?;
        let keys = body
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("/ledger/{app}/keys has no keys"))?;
        keys.iter()
            .map(|k| {
                let s = |f: &str| {
                    k.get(f)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| anyhow!("a key without {f}"))
                };
                Ok(KeyRow {
                    app: app.to_string(),
                    key_id: s("keyId")?,
                    public_key: s("publicKey")?,
                    from_seq: k
                        .get("fromSeq")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| anyhow!("a key without fromSeq"))?,
                    to_seq: k.get("toSeq").and_then(Value::as_u64),
                })
            })
            .collect()
    }

    fn class_at(
        &self,
        app: &str,
        class: &str,
        where_: Option<&Value>,
        t: Timestamp,
    ) -> anyhow::Result<(u64, Vec<Map<String, Value>>)> {
        // The first page pins the point (asOf → its sequence number); the next pages ask
        // for that exact point, past the last objectId seen.
        let mut point = ("asOf", t.to_rfc3339());
        let mut seq = None;
        let mut last: Option<String> = None;
        let mut records = Vec::new();
        loop {
            let after = last.as_ref().map(|id| json!({"objectId": {"$gt": id}}));
            let w = match (where_, after) {
                (None, None) => None,
                (Some(w), None) => Some(w.clone()),
                (None, Some(a)) => Some(a),
                (Some(w), Some(a)) => Some(json!({"$and": [w, a]})),
            };
            let mut query = vec![
                ("order", "objectId".to_string()),
                ("limit", self.page.to_string()),
                (point.0, point.1.clone()),
            ];
            if let Some(w) = w {
                query.push(("where", w.to_string()));
            }
            let resp = self.get(app, &format!("classes/{}", segment(class)), &query)?;
            let page_seq: u64 = resp
                .header("x-ledger-seq")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("the server's answer has no X-Ledger-Seq"))?;
            let body: Value = resp.into_json().context("reading a class page")?;
            let results = body
                .get("results")
                .and_then(Value::as_array)
                .ok_or_else(|| anyhow!("the server's answer has no results"))?;
            if *seq.get_or_insert(page_seq) != page_seq {
                bail!("the server answered pages of {class} at different points ({page_seq}, {seq:?})");
            }
            point = ("asOfSeq", page_seq.to_string());
            let n = results.len();
            for r in results {
                let obj = r
                    .as_object()
                    .ok_or_else(|| anyhow!("a result that is not an object"))?;
                last = obj
                    .get("objectId")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                records.push(obj.clone());
            }
            if n < self.page {
                break;
            }
        }
        Ok((seq.unwrap_or(0), records))
    }

    fn day(&self, app: &str, day: &Day) -> anyhow::Result<DayReport> {
        self.get_json(
            app,
            &format!("day/{}", day.date),
            &[("tz", day.tz.name().to_string())],
        )
    }

    fn diff(
        &self,
        app: &str,
        class: Option<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> anyhow::Result<Diff> {
        let mut query = vec![("from", from.to_rfc3339()), ("to", to.to_rfc3339())];
        if let Some(c) = class {
            query.push(("class", c.to_string()));
        }
        self.get_json(app, "diff", &query)
    }

    fn history(&self, app: &str, class: &str, object_id: &str) -> anyhow::Result<History> {
        self.get_json(
            app,
            &format!("history/{}/{}", segment(class), segment(object_id)),
            &[],
        )
    }

    fn export(&self, apps: &[String], out: &mut dyn Write) -> anyhow::Result<u64> {
        // Each app's export is a file of its own; one file for several apps takes one
        // header naming them all, then each app's section as the server sent it.
        let mut out = std::io::BufWriter::new(out);
        serde_json::to_writer(
            &mut out,
            &json!({"type": "export", "format": ledger::export::FORMAT,
                "version": ledger::export::VERSION, "apps": apps}),
        )?;
        out.write_all(b"\n")?;
        let mut events = 0;
        for app in apps {
            let mut lines = BufReader::new(self.export_reader(app)?).lines();
            let header = lines
                .next()
                .ok_or_else(|| anyhow!("the export of {app} is empty"))??;
            let is_header = serde_json::from_str::<Value>(&header)
                .is_ok_and(|v| v.get("type").and_then(Value::as_str) == Some("export"));
            if !is_header {
                bail!("the export of {app} does not start with its header");
            }
            for line in lines {
                let line = line?;
                if line.starts_with(r#"{"type":"event""#) {
                    events += 1;
                }
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()?;
        Ok(events)
    }

    fn event_line(&self, app: &str, seq: u64) -> anyhow::Result<Value> {
        let body: Value = self.get_json(
            app,
            "events",
            &[("from", seq.to_string()), ("limit", "1".to_string())],
        )?;
        body.get("events")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .filter(|e| e.get("seq").and_then(Value::as_u64) == Some(seq))
            .cloned()
            .ok_or_else(|| anyhow!("the server has no event {seq} of {app}"))
    }

    fn inclusion(
        &self,
        app: &str,
        seq: u64,
        size: Option<u64>,
    ) -> anyhow::Result<(InclusionProof, Option<String>)> {
        let mut query = vec![("seq", seq.to_string())];
        if let Some(n) = size {
            query.push(("size", n.to_string()));
        }
        let body: Value = self.get_json(app, "proof/inclusion", &query)?;
        let text = body
            .get("checkpoint")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok((
            serde_json::from_value(body).context("reading the inclusion proof")?,
            text,
        ))
    }

    fn consistency(
        &self,
        app: &str,
        from: u64,
        to: Option<u64>,
    ) -> anyhow::Result<(ConsistencyProof, Option<String>, Option<String>)> {
        let mut query = vec![("from", from.to_string())];
        if let Some(n) = to {
            query.push(("to", n.to_string()));
        }
        let body: Value = self.get_json(app, "proof/consistency", &query)?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let (old, new) = (text("old_checkpoint"), text("checkpoint"));
        Ok((
            serde_json::from_value(body).context("reading the consistency proof")?,
            old,
            new,
        ))
    }
}
