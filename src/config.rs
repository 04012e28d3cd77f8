//! Settings of `xlrs serve`, from flags or the environment.

use std::time::Duration;

use clap::Args;

use crate::http::statement_upload::UploadLimits;
use crate::live_stream::StreamLimits;
use crate::spool::SpoolSettings;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (`host:port`; port 0 picks a free port).
    #[arg(long, env = "XLRS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Key of a credential with scope `all`, created or updated at start-up.
    #[arg(long, env = "XLRS_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,

    /// Secret of that credential.
    #[arg(long, env = "XLRS_ADMIN_SECRET", hide_env_values = true)]
    pub admin_secret: Option<String>,

    /// Largest request body, in bytes, other than attachment content: the
    /// statements (a JSON body, or the first part of a multipart one), a
    /// signature, a document.
    #[arg(long, env = "XLRS_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest content of one attachment, in bytes (413 beyond).
    #[arg(long, env = "XLRS_MAX_ATTACHMENT_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_attachment_bytes: u64,

    /// The buffer attachment content streams through, in bytes: content of a
    /// request beyond it waits in a temporary file, and responses read stored
    /// content this much at a time.
    #[arg(long, env = "XLRS_ATTACHMENT_BUFFER_BYTES", default_value_t = 256 * 1024)]
    pub attachment_buffer_bytes: usize,

    /// Directory for the temporary files of attachment uploads (default: the
    /// system's temporary directory).
    #[arg(long, env = "XLRS_SPOOL_DIR")]
    pub spool_dir: Option<std::path::PathBuf>,

    /// Most statements in one page of a statement query (also `limit=0`).
    #[arg(long, env = "XLRS_PAGE_LIMIT", default_value_t = 500)]
    pub page_limit: u32,

    /// Home page of the account in the `authority` the LRS sets on statements.
    #[arg(long, env = "XLRS_AUTHORITY_HOME_PAGE", default_value = "https://xlrs.invalid/credentials")]
    pub authority_home_page: String,

    /// Seconds a verified credential stays cached (revocation takes at most this long).
    #[arg(long, env = "XLRS_AUTH_CACHE_SECS", default_value_t = 30)]
    pub auth_cache_secs: u64,

    /// TOML file of the forwarders (targets and routes; see docs/forwarding.md).
    /// Without it, nothing is forwarded.
    #[arg(long, env = "XLRS_FORWARDERS")]
    pub forwarders: Option<std::path::PathBuf>,

    /// This node's name in the forwarders' claims and leases: the same
    /// across restarts, different for every node on one database. Started
    /// again, a node releases the claims it held under it at once instead
    /// of waiting out their leases. Default: `<hostname>:<port listened on>`.
    #[arg(long, env = "XLRS_NODE_ID")]
    pub node_id: Option<String>,

    /// Most live-stream consumers (`/xapi/extensions/stream`) at once; 503 beyond.
    #[arg(long, env = "XLRS_MAX_STREAM_CONSUMERS", default_value_t = 256)]
    pub max_stream_consumers: usize,

    /// Seconds a live-stream consumer may leave its events unread before it
    /// is dropped (it resumes with Last-Event-ID). Long enough for a client's
    /// pause, short enough that a stuck one does not hold its slot.
    #[arg(long, env = "XLRS_STREAM_STALL_SECS", default_value_t = 10)]
    pub stream_stall_secs: u64,

    /// Keep learner progress (docs/progress.md) in each commit. Off, ingest
    /// writes less and /xapi/extensions/progress answers 404; on again,
    /// start-up counts every statement afresh. Set it alike on every node.
    #[arg(long, env = "XLRS_PROGRESS", default_value_t = true, action = clap::ArgAction::Set)]
    pub progress: bool,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "XLRS_WORKERS")]
    pub workers: Option<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://path.db` (created if missing) or `postgres://user@host/db`.
    #[arg(long = "database-url", env = "DATABASE_URL", default_value = "sqlite://xlrs.db", global = true)]
    pub url: String,

    /// Connections in the pool.
    #[arg(long, env = "XLRS_DB_POOL", default_value_t = 8, global = true)]
    pub pool_size: u32,
}

impl ServeArgs {
    pub fn upload_limits(&self) -> UploadLimits {
        UploadLimits {
            json_bytes: self.max_body_bytes,
            attachment_bytes: self.max_attachment_bytes,
            spool: SpoolSettings {
                buffer_bytes: self.attachment_buffer_bytes.max(1024),
                dir: self.spool_dir.clone().unwrap_or_else(std::env::temp_dir),
            },
        }
    }

    pub fn stream_limits(&self) -> StreamLimits {
        StreamLimits {
            max_consumers: self.max_stream_consumers,
            stall: Duration::from_secs(self.stream_stall_secs.max(1)),
        }
    }

    pub fn auth_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.auth_cache_secs)
    }
}
