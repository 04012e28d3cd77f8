//! The command line: `serve`, `migrate`, `credentials`, `forward`.

use clap::{Parser, Subcommand};

use crate::config::{DatabaseArgs, ServeArgs};
use crate::forward::{ForwardingConfig, replay};
use crate::startup::Application;
use crate::store::{self, credentials, outbox};

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
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Manage the credentials clients authenticate with.
    Credentials {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        action: CredentialsAction,
    },
    /// Look after the forwarders' outbox: status, retry, pause, resume, replay.
    Forward {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        action: ForwardAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ForwardAction {
    /// Outbox rows per target and status, the oldest of each, and paused targets.
    Status,
    /// Make rows due again now (by default the dead and parked ones).
    Retry {
        /// Only this target's rows.
        #[arg(long)]
        target: Option<String>,
        /// Statuses to retry, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "dead,parked")]
        status: Vec<String>,
    },
    /// Stop delivering to a target (on every node) until it is resumed.
    Pause {
        target: String,
        #[arg(long, default_value = "paused by an operator")]
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
        /// The forwarders' configuration (the target's routes).
        #[arg(long, env = "XLRS_FORWARDERS")]
        forwarders: std::path::PathBuf,
    },
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
            println!("migrations applied");
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
        Command::Forward { database, action } => {
            let db = store::connect(&database).await?;
            store::migrate(&db).await?;
            forward(&db, action).await
        }
    }
}

async fn forward(db: &sea_orm::DatabaseConnection, action: ForwardAction) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let now_us = now.timestamp_micros();
    match action {
        ForwardAction::Status => {
            println!("target\tstatus\trows\toldest");
            for c in outbox::counts(db).await? {
                let oldest = chrono::DateTime::from_timestamp_micros(c.oldest_created_us).unwrap_or(now);
                println!("{}\t{}\t{}\t{}", c.target, c.status.as_str(), c.rows, oldest.to_rfc3339());
            }
            for (target, until, reason) in outbox::pauses(db).await? {
                if until > now_us {
                    let until = match chrono::DateTime::from_timestamp_micros(until) {
                        Some(t) if until != i64::MAX => t.to_rfc3339(),
                        _ => "it is resumed".to_owned(),
                    };
                    println!("{target} is paused until {until}: {reason}");
                }
            }
        }
        ForwardAction::Retry { target, status } => {
            let statuses = status
                .iter()
                .map(|s| outbox::Status::parse(s).ok_or_else(|| anyhow::anyhow!("unknown status '{s}'")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let n = outbox::retry(db, target.as_deref(), &statuses, now_us).await?;
            println!("{n} rows are due again");
        }
        ForwardAction::Pause { target, reason } => {
            outbox::set_pause(db, &target, Some(i64::MAX), Some(&reason), now_us).await?;
            println!("paused {target}");
        }
        ForwardAction::Resume { target } => {
            outbox::set_pause(db, &target, None, None, now_us).await?;
            println!("resumed {target}");
        }
        ForwardAction::Replay { target, since, until, forwarders } => {
            let config = ForwardingConfig::load(&forwarders)?;
            let time = |s: &str| {
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| t.timestamp_micros())
                    .map_err(|e| anyhow::anyhow!("'{s}' is not an RFC 3339 time: {e}"))
            };
            let until = until.as_deref().map(time).transpose()?.unwrap_or(now_us);
            let n = replay::replay(db, &config, &target, time(&since)?, until).await?;
            println!("{n} rows enqueued for {target}");
        }
    }
    Ok(())
}
