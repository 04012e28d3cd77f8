//! `xlrs export`: a client of GET /xapi/extensions/export that writes the
//! statements to a file or stdout, shows progress, and resumes an
//! interrupted export. While writing FILE it keeps FILE.xlrs-export beside
//! it (the cursor, statements written, the last id, FILE's length then),
//! rewritten only after the data it describes is written, so `--resume` cuts
//! FILE back to a whole record and continues after the last id.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use flate2::Compression;
use flate2::write::GzEncoder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

const CURSOR_HEADER: &str = "x-xlrs-export-cursor";
const TOTAL_HEADER: &str = "x-xlrs-export-total";
/// Written out (a gzip member, a state update) once this much is complete.
const COMMIT_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Ndjson,
    Csv,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The LRS's xAPI endpoint, e.g. http://lrs.example.com:8080/xapi.
    #[arg(long, env = "XLRS_ENDPOINT")]
    pub endpoint: String,
    /// Credential key (statements/read or statements/read/mine).
    #[arg(long, env = "XLRS_KEY", hide_env_values = true)]
    pub key: String,
    #[arg(long, env = "XLRS_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Where to write: a file, or `-` for stdout (stdout cannot be resumed).
    #[arg(long, short, default_value = "-")]
    pub output: String,
    /// Continue the interrupted export of --output (filters and format come from it).
    #[arg(long)]
    pub resume: bool,
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// CSV columns, comma-separated (docs/export.md lists them).
    #[arg(long)]
    pub columns: Option<String>,
    /// Compress the output (gzip; concatenated members).
    #[arg(long)]
    pub gzip: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// An Agent or identified Group as JSON.
    #[arg(long)]
    pub agent: Option<String>,
    #[arg(long)]
    pub verb: Option<String>,
    #[arg(long)]
    pub activity: Option<String>,
    #[arg(long)]
    pub registration: Option<String>,
    #[arg(long)]
    pub related_activities: bool,
    #[arg(long)]
    pub related_agents: bool,
    /// Only statements stored after this time (ISO 8601).
    #[arg(long)]
    pub since: Option<String>,
    /// Only statements stored at or before this time (default: when the export starts).
    #[arg(long)]
    pub until: Option<String>,
}

/// FILE.xlrs-export: where an interrupted export stands.
#[derive(Debug, Serialize, Deserialize)]
struct ResumeState {
    cursor: String,
    format: OutputFormat,
    gzip: bool,
    statements: u64,
    last_id: Option<String>,
    /// FILE's length when it held exactly `statements` records.
    bytes: u64,
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let to_file = args.output != "-";
    if !to_file && args.resume {
        bail!("--resume needs --output FILE: an export to stdout cannot be resumed");
    }
    let state_path = PathBuf::from(format!("{}.xlrs-export", args.output));
    let progress = progress_bar(args.quiet);
    let earlier = if args.resume { Some(read_state(&state_path, &args)?) } else { None };
    if to_file && earlier.is_none() && state_path.exists() {
        bail!(
            "{} holds an interrupted export of {}: continue it with --resume, or delete it to start over",
            state_path.display(),
            args.output
        );
    }
    let response = request(&args, earlier.as_ref(), !progress.is_hidden()).await?;
    let cursor = header(&response, CURSOR_HEADER).context("the LRS's answer has no export cursor")?;
    let format = earlier.as_ref().map_or(args.format.unwrap_or(OutputFormat::Ndjson), |s| s.format);
    let mut out = Output::open(&args, to_file.then_some(state_path.as_path()), earlier, cursor, format)?;
    let total = header(&response, TOTAL_HEADER).and_then(|t| t.parse::<u64>().ok());
    progress.set_length(out.state.statements + total.unwrap_or(0));
    progress.set_position(out.state.statements);
    let result = copy(response, &mut out, &progress).await;
    progress.finish_and_clear();
    match result {
        Ok(()) => out.complete(),
        Err(e) if to_file => Err(e.context(format!(
            "the export stopped after {} statements; `xlrs export --resume --output {}` continues it",
            out.state.statements, args.output
        ))),
        Err(e) => Err(e),
    }
}

fn read_state(path: &Path, args: &ExportArgs) -> anyhow::Result<ResumeState> {
    let given = [args.agent.is_some(), args.verb.is_some(), args.activity.is_some(), args.registration.is_some()];
    let more = [args.since.is_some(), args.until.is_some(), args.format.is_some(), args.columns.is_some(), args.gzip];
    if given.iter().chain(&more).any(|g| *g) || args.related_activities || args.related_agents {
        bail!("--resume continues an export as it was started: give no filters, --format, --columns or --gzip");
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("nothing to resume: cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not an export's state", path.display()))
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let template = "{wide_bar} {human_pos}/{human_len} statements, {rate}, ETA {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        // Whole statements per second (indicatif's own shows four decimals).
        let rate = |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", state.per_sec());
        };
        bar.set_style(style.with_key("rate", rate));
    }
    bar
}

async fn request(args: &ExportArgs, earlier: Option<&ResumeState>, count: bool) -> anyhow::Result<reqwest::Response> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    match earlier {
        Some(state) => {
            query.append_pair("cursor", &state.cursor);
            if let Some(id) = &state.last_id {
                query.append_pair("after", id);
            }
        }
        None => filter_query(args, &mut query),
    }
    if count {
        query.append_pair("count", "true");
    }
    let query = query.finish();
    let separator = if query.is_empty() { "" } else { "?" };
    let url = format!("{}/extensions/export{separator}{query}", args.endpoint.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(300))
        .build()?;
    let response = client
        .get(&url)
        .basic_auth(&args.key, Some(&args.secret))
        .send()
        .await
        .with_context(|| format!("cannot reach the LRS at {}", args.endpoint))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or(text);
        bail!("the LRS refused the export: {status}: {message}");
    }
    Ok(response)
}

fn filter_query(args: &ExportArgs, query: &mut form_urlencoded::Serializer<'_, String>) {
    let pairs = [
        ("agent", args.agent.as_deref()),
        ("verb", args.verb.as_deref()),
        ("activity", args.activity.as_deref()),
        ("registration", args.registration.as_deref()),
        ("related_activities", args.related_activities.then_some("true")),
        ("related_agents", args.related_agents.then_some("true")),
        ("since", args.since.as_deref()),
        ("until", args.until.as_deref()),
        ("columns", args.columns.as_deref()),
    ];
    for (name, value) in pairs {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    if args.format == Some(OutputFormat::Csv) {
        query.append_pair("format", "csv");
    }
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Reads the body and hands whole records to `out`, `COMMIT_BYTES` or so at a time.
async fn copy(mut response: reqwest::Response, out: &mut Output, progress: &ProgressBar) -> anyhow::Result<()> {
    let mut records = Records::new(out.state.format);
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = response.chunk().await.context("the transfer broke")?;
        let finished = chunk.is_none();
        if let Some(chunk) = chunk {
            pending.extend_from_slice(&chunk);
            records.scan(&pending);
        }
        if records.complete_bytes > 0 && (finished || records.complete_bytes >= COMMIT_BYTES) {
            let last = records.last_record(&pending).map(<[u8]>::to_vec);
            let whole: Vec<u8> = pending.drain(..records.complete_bytes).collect();
            let written = out.write(&whole, records.count, last.as_deref())?;
            progress.inc(written);
            records.reset();
        }
        if finished {
            if !pending.is_empty() {
                bail!("the export ended inside a record");
            }
            return Ok(());
        }
    }
}

/// Record ends in a growing buffer: a newline, outside quotes for CSV (a
/// quoted field may hold newlines; `""` toggles twice, so it needs no care).
struct Records {
    csv: bool,
    in_quotes: bool,
    scanned: usize,
    complete_bytes: usize,
    last_start: usize,
    count: u64,
}

impl Records {
    fn new(format: OutputFormat) -> Records {
        Records {
            csv: format == OutputFormat::Csv,
            in_quotes: false,
            scanned: 0,
            complete_bytes: 0,
            last_start: 0,
            count: 0,
        }
    }

    fn scan(&mut self, buf: &[u8]) {
        let from = self.scanned;
        let mut record_end = |end: usize| {
            self.last_start = self.complete_bytes;
            self.complete_bytes = end;
            self.count += 1;
        };
        if self.csv {
            for i in memchr::memchr2_iter(b'"', b'\n', &buf[from..]).map(|i| i + from) {
                if buf[i] == b'"' {
                    self.in_quotes = !self.in_quotes;
                } else if !self.in_quotes {
                    record_end(i + 1);
                }
            }
        } else {
            memchr::memchr_iter(b'\n', &buf[from..]).for_each(|i| record_end(from + i + 1));
        }
        self.scanned = buf.len();
    }

    fn last_record<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        (self.count > 0).then(|| &buf[self.last_start..self.complete_bytes])
    }

    /// After the complete records were taken from the buffer's front.
    fn reset(&mut self) {
        self.scanned -= self.complete_bytes;
        (self.complete_bytes, self.last_start, self.count) = (0, 0, 0);
    }
}

/// The statement id a record starts with: a JSON line's `id`; a CSV row's
/// first field (ids are UUIDs, never quoted).
fn record_id(format: OutputFormat, record: &[u8]) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    match format {
        OutputFormat::Ndjson => Ok(serde_json::from_slice::<Id>(record).context("a line is not a statement")?.id),
        OutputFormat::Csv => {
            let field = record.split(|b| *b == b',' || *b == b'\n' || *b == b'\r').next().unwrap_or_default();
            Ok(String::from_utf8_lossy(field).into_owned())
        }
    }
}

/// Where the records go, and the state that says how far they got.
struct Output {
    sink: Box<dyn Write>,
    state: ResumeState,
    state_path: Option<PathBuf>,
    /// A new CSV export starts with its header row: a record, not a statement.
    header_pending: bool,
}

impl Output {
    fn open(
        args: &ExportArgs,
        state_path: Option<&Path>,
        earlier: Option<ResumeState>,
        cursor: String,
        format: OutputFormat,
    ) -> anyhow::Result<Output> {
        let header_pending = earlier.is_none() && format == OutputFormat::Csv;
        let state =
            earlier.unwrap_or(ResumeState { cursor, format, gzip: args.gzip, statements: 0, last_id: None, bytes: 0 });
        let sink: Box<dyn Write> = match state_path {
            None => Box::new(std::io::stdout().lock()),
            Some(_) => {
                let mut file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(&args.output)
                    .with_context(|| format!("cannot open {}", args.output))?;
                // Whatever follows the last recorded record was never accounted for.
                file.set_len(state.bytes)?;
                file.seek(SeekFrom::End(0))?;
                Box::new(file)
            }
        };
        let out = Output { sink, state, state_path: state_path.map(Path::to_path_buf), header_pending };
        out.save_state()?;
        Ok(out)
    }

    /// Writes `records` (`count` whole records, the last one `last`), then
    /// the state that includes them; returns the statements among them.
    fn write(&mut self, records: &[u8], count: u64, last: Option<&[u8]>) -> anyhow::Result<u64> {
        let bytes = if self.state.gzip {
            let mut member = GzEncoder::new(Vec::with_capacity(records.len() / 4), Compression::default());
            member.write_all(records)?;
            member.finish()?
        } else {
            records.to_vec()
        };
        self.sink.write_all(&bytes).context("cannot write the output")?;
        self.sink.flush().context("cannot write the output")?;
        let statements = count - u64::from(std::mem::take(&mut self.header_pending));
        if statements > 0
            && let Some(last) = last
        {
            self.state.last_id = Some(record_id(self.state.format, last)?);
        }
        self.state.statements += statements;
        self.state.bytes += bytes.len() as u64;
        self.save_state()?;
        Ok(statements)
    }

    /// Written atomically (a new file renamed over the old), so a kill
    /// leaves the old state or the new, never half of one.
    fn save_state(&self) -> anyhow::Result<()> {
        let Some(path) = &self.state_path else {
            return Ok(());
        };
        let tmp = path.with_extension("xlrs-export.tmp");
        let mut file = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(&serde_json::to_vec(&self.state)?)?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    fn complete(self) -> anyhow::Result<()> {
        if let Some(path) = &self.state_path {
            std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
            eprintln!("xlrs export: {} statements written", self.state.statements);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_end_at_newlines_outside_quotes() {
        let mut r = Records::new(OutputFormat::Csv);
        let buf = b"id,x\na,\"line\nbreak \"\"q\"\"\"\nb,y\nc,\"open";
        r.scan(&buf[..12]);
        assert_eq!(r.count, 1, "only the header is whole so far");
        r.scan(buf);
        assert_eq!(r.count, 3);
        assert_eq!(r.last_record(buf), Some(&b"b,y\n"[..]));
        assert_eq!(&buf[r.complete_bytes..], b"c,\"open");
    }

    #[test]
    fn ndjson_records_are_lines() {
        let mut r = Records::new(OutputFormat::Ndjson);
        let buf = br#"{"id":"a"}
{"id":"b","x":"\n"}
{"id""#;
        r.scan(buf);
        assert_eq!(r.count, 2);
        assert_eq!(record_id(OutputFormat::Ndjson, r.last_record(buf).unwrap()).unwrap(), "b");
    }
}
