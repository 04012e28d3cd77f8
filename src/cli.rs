//! The command line: `serve`, `migrate`, `credentials`, `forward`, `export`.

use clap::{Parser, Subcommand};

use crate::config::{DatabaseArgs, ServeArgs};
use crate::export_client::{self, ExportArgs};
use crate::forward::ForwardingConfig;
use crate::forward::operations::{self, DEFAULT_PAUSE_REASON, Operations, Replay};
use crate::forward::replay::Replayed;
use crate::startup::Application;
use crate::store::{self, credentials};

#[derive(Debug, Parser)]
#[command(name = "xlrs", version, about = "xAPI Learning Record Store")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve xAPI under /xapi/ (applies migrations first).
    Serve(ServeArgs),
    /// Apply database migrations (and count earlier statements into learner
    /// progress) and exit.
    Migrate(DatabaseArgs),
    /// Manage the credentials clients authenticate with.
    Credentials {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        action: CredentialsAction,
    },
    /// Look after the forwarders: status, rows, retry, pause, resume, replay, test, identities.
    Forward {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The forwarders' configuration: replay and test need it (the target's routes,
        /// its credentials); with it, other commands refuse targets it does not name.
        #[arg(long, env = "XLRS_FORWARDERS", global = true)]
        forwarders: Option<std::path::PathBuf>,
        #[command(subcommand)]
        action: ForwardAction,
    },
    /// Export statements from an LRS over HTTP as NDJSON or CSV, to a file
    /// (resumable) or stdout; credentials from XLRS_KEY / XLRS_SECRET.
    Export(ExportArgs),
}

#[derive(Debug, Subcommand)]
pub enum ForwardAction {
    /// Outbox rows per target and status, the oldest of each, and paused targets.
    Status,
    /// A target's outbox rows by id: status, attempts, last HTTP status and error.
    Rows {
        target: String,
        /// Only rows of this status (e.g. `parked`, `dead`).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = operations::DEFAULT_LIMIT)]
        limit: u32,
        /// Rows after this id (the `next` of an earlier page).
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Who learners are on a target: operator rows and remembered lookups.
    Identity {
        #[command(subcommand)]
        action: IdentityAction,
    },
    /// Make rows due again now (by default the dead and parked ones), and
    /// look up learners not found before again.
    Retry {
        /// Only this target's rows.
        #[arg(long)]
        target: Option<String>,
        /// Statuses to retry, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "dead,parked")]
        status: Vec<String>,
        /// Retry delivered (`succeeded`) rows too: the target gets them again.
        #[arg(long)]
        force: bool,
    },
    /// Stop delivering to a target (on every node) until it is resumed.
    Pause {
        target: String,
        #[arg(long, default_value = DEFAULT_PAUSE_REASON)]
        reason: String,
    },
    /// Deliver to a paused target again.
    Resume { target: String },
    /// Route statements stored in a time range to a target again.
    Replay {
        target: String,
        /// Start of the range of `stored` (RFC 3339), inclusive.
        #[arg(long)]
        since: String,
        /// End of the range (default: now), inclusive.
        #[arg(long)]
        until: Option<String>,
        /// Only statements with one of these verbs (IRIs, or bare ADL verbs), comma-separated.
        #[arg(long, value_delimiter = ',')]
        verb: Vec<String>,
        /// Only statements about this activity (its IRI).
        #[arg(long)]
        activity: Option<String>,
        /// Only statements by this actor (an actor key, as `identity` takes, or an e-mail).
        #[arg(long)]
        agent: Option<String>,
        /// Count the rows it would write, per route and operation; write none.
        #[arg(long)]
        dry_run: bool,
    },
    /// One authenticated call to a target that changes nothing there, and what answered.
    Test { target: String },
}

#[derive(Debug, Subcommand)]
pub enum IdentityAction {
    /// Every identity row of a target.
    List { target: String },
    /// An operator's row: ACTOR (an actor key such as `mbox:mailto:ann@example.com`
    /// or `account:https://sso.example.com|ann`, or a bare e-mail) is REMOTE_ID on TARGET.
    Set { target: String, actor: String, remote_id: String },
    /// Removes a row (an operator's, or a remembered lookup).
    Remove { target: String, actor: String },
}

#[derive(Debug, Subcommand)]
pub enum CredentialsAction {
    /// Create a credential and print its key and secret (the secret is shown only now).
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated xAPI scopes, e.g. `statements/write,statements/read/mine`.
        #[arg(long, default_value = "all")]
        scopes: String,
        /// The xAPI version (1.0.3 or 2.0.0) its clients speak: stated in the
        /// answers to its requests that carry no version header.
        #[arg(long)]
        default_version: Option<String>,
    },
    /// List active credentials (never their secrets).
    List,
    /// Revoke a credential by key.
    Revoke { key: String },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => Application::build(args).await?.run_until_stopped().await,
        Command::Migrate(db_args) => {
            let db = store::connect(&db_args).await?;
            store::migrate(&db).await?;
            let counted = store::progress::backfill(&db).await?;
            println!("migrations applied");
            if counted > 0 {
                println!("progress: counted {counted} statements stored before it was kept");
            }
            Ok(())
        }
        Command::Credentials { database, action } => {
            let db = store::connect(&database).await?;
            store::migrate(&db).await?;
            match action {
                CredentialsAction::Create { name, scopes, default_version } => {
                    let (c, secret) = credentials::create(&db, &name, &scopes, default_version.as_deref()).await?;
                    println!("key: {}\nsecret: {secret}\nscopes: {}", c.key, c.scopes);
                    if let Some(v) = &c.default_version {
                        println!("default version: {v}");
                    }
                }
                CredentialsAction::List => {
                    for c in credentials::list(&db).await? {
                        println!("{}\t{}\t{}", c.key, c.name, c.scopes);
                    }
                }
                CredentialsAction::Revoke { key } => {
                    if !credentials::revoke(&db, &key).await? {
                        anyhow::bail!("no active credential with key {key}");
                    }
                    println!("revoked {key}");
                }
            }
            Ok(())
        }
        Command::Forward { database, forwarders, action } => {
            let db = store::connect(&database).await?;
            store::migrate(&db).await?;
            let config = forwarders.as_deref().map(ForwardingConfig::load).transpose()?;
            forward(&Operations::new(&db, config.as_ref()), action).await
        }
        Command::Export(args) => export_client::run(args).await,
    }
}

fn when(us: Option<chrono::DateTime<chrono::Utc>>) -> String {
    us.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
}

fn time(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| anyhow::anyhow!("'{s}' is not an RFC 3339 time: {e}"))
}

async fn forward(ops: &Operations<'_>, action: ForwardAction) -> anyhow::Result<()> {
    match action {
        ForwardAction::Status => {
            println!("target\tstatus\trows");
            let targets = ops.status(chrono::Utc::now()).await?;
            for t in &targets {
                for (status, rows) in &t.rows {
                    println!("{}\t{status}\t{rows}", t.target);
                }
            }
            for t in &targets {
                if let Some(age) = t.oldest_open_age_secs {
                    println!("{}: the oldest row not delivered yet is {age:.0} s old", t.target);
                }
                if let Some(p) = &t.paused {
                    let until = p.until.map_or_else(|| "it is resumed".to_owned(), |u| u.to_rfc3339());
                    println!("{} is paused until {until}: {}", t.target, p.reason);
                }
            }
        }
        ForwardAction::Rows { target, status, limit, after } => {
            let status = status.as_deref().map(operations::parse_status).transpose()?;
            let page = ops.rows(&target, status, after, limit).await?;
            println!("id\top\tstatement\tstatus\tattempts\tnext attempt\thttp\tlast error");
            for r in &page.rows {
                let http = r.last_http_status.map_or_else(|| "-".to_owned(), |s| s.to_string());
                let error = r.last_error.as_deref().unwrap_or("-");
                let next = when(r.next_attempt);
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{next}\t{http}\t{error}",
                    r.id, r.op, r.statement_id, r.status, r.attempts
                );
            }
            if let Some(next) = page.next_after {
                println!("more: --after {next}");
            }
        }
        ForwardAction::Identity { action } => identity(ops, action).await?,
        ForwardAction::Retry { target, status, force } => {
            let statuses = operations::parse_statuses(&status)?;
            let retried = ops.retry(target.as_deref(), &statuses, force).await?;
            println!("{} rows are due again", retried.rows);
            if retried.forgotten_lookups > 0 {
                println!("{} learners not found before will be looked up again", retried.forgotten_lookups);
            }
        }
        ForwardAction::Pause { target, reason } => {
            ops.pause(&target, Some(&reason)).await?;
            println!("paused {target}");
        }
        ForwardAction::Resume { target } => {
            ops.resume(&target).await?;
            println!("resumed {target}");
        }
        ForwardAction::Replay { target, since, until, verb, activity, agent, dry_run } => {
            let until = until.as_deref().map(time).transpose()?;
            let replay = Replay { since: time(&since)?, until, verbs: verb, activity, agent, dry_run };
            print_replayed(&target, &ops.replay(&target, &replay).await?);
        }
        ForwardAction::Test { target } => {
            let probe = ops.test(&target).await?;
            let answer = probe.http_status.map_or_else(|| "no answer".to_owned(), |s| format!("HTTP {s}"));
            let verdict = if probe.ok { "ok" } else { "FAILED" };
            println!("{target}: {verdict}: {} answered {answer} in {} ms", probe.call, probe.elapsed_ms);
            if let Some(error) = &probe.error {
                println!("{error}");
            }
            if !probe.ok {
                anyhow::bail!("the test call to {target} failed");
            }
        }
    }
    Ok(())
}

fn print_replayed(target: &str, r: &Replayed) {
    let verb = if r.dry_run { "would be enqueued (dry run: nothing written)" } else { "enqueued" };
    println!("{} rows {verb} for {target}, from {} statements", r.rows, r.statements);
    for (route, rows) in &r.by_route {
        println!("by route\t{route}\t{rows}");
    }
    for (op, rows) in &r.by_op {
        println!("by operation\t{op}\t{rows}");
    }
}

async fn identity(ops: &Operations<'_>, action: IdentityAction) -> anyhow::Result<()> {
    match action {
        IdentityAction::List { target } => {
            println!("actor\tremote id\tsource\texpires");
            for i in ops.identities(&target).await? {
                let remote = i.remote_id.as_deref().unwrap_or("(not found)");
                println!("{}\t{remote}\t{}\t{}", i.actor, i.source, when(i.expires));
            }
        }
        IdentityAction::Set { target, actor, remote_id } => {
            let i = ops.set_identity(&target, &actor, &remote_id).await?;
            println!("{} is {} on {target}", i.actor, remote_id.trim());
        }
        IdentityAction::Remove { target, actor } => {
            ops.remove_identity(&target, &actor).await?;
            println!("removed {actor} from {target}");
        }
    }
    Ok(())
}
