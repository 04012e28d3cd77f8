//! The command line: `serve`, `migrate`, `credentials`.

use clap::{Parser, Subcommand};

use crate::config::{DatabaseArgs, ServeArgs};
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
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Manage the credentials clients authenticate with.
    Credentials {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        action: CredentialsAction,
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
    }
}
