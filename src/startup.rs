//! Builds the application: database, writer, HTTP server. `create_app` is the
//! one app factory, used by `xlrs serve` and by the tests.

use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{ErrorHandlers, NormalizePath, TrailingSlash, from_fn};
use actix_web::{App, Error, HttpServer, web};
use anyhow::Context;
use sea_orm::DatabaseConnection;

use crate::auth::Authenticator;
use crate::config::ServeArgs;
use crate::error::{LrsError, json_error_handler};
use crate::forward::dispatch::Dispatchers;
use crate::forward::{ForwardingConfig, Routing};
use crate::http;
use crate::http::statement_upload::UploadLimits;
use crate::live_stream::LiveStreams;
use crate::metrics::Metrics;
use crate::store::{self, credentials, writer::Writer, writer::WriterHandle};
use crate::xapi::schema;

/// Everything a request handler may need.
pub struct AppState {
    pub db: DatabaseConnection,
    pub writer: Writer,
    pub auth: Authenticator,
    pub page_limit: u32,
    pub uploads: UploadLimits,
    /// The forwarders as configured: the admin API's targets, and replay's routes.
    pub forwarding: Arc<ForwardingConfig>,
    /// To wake a target's dispatcher when an operator made rows due.
    pub routing: Arc<Routing>,
    pub metrics: Arc<Metrics>,
    pub streams: Arc<LiveStreams>,
    /// Whether learner progress is kept (`--progress`).
    pub progress: bool,
}

pub fn create_app(
    state: web::Data<AppState>,
    max_body_bytes: usize,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .app_data(web::PayloadConfig::new(max_body_bytes))
        .app_data(web::QueryConfig::default().error_handler(|e, _| LrsError::bad_request(e.to_string()).into()))
        .configure(http::configure)
        .default_service(web::to(http::not_found))
        .wrap(ErrorHandlers::new().default_handler(json_error_handler))
        .wrap(from_fn(http::xapi_headers::xapi_headers))
        .wrap(from_fn(http::metrics::count_requests))
        .wrap(NormalizePath::new(TrailingSlash::Trim))
        // Browser-hosted content calls the LRS from other origins.
        .wrap(Cors::permissive().max_age(86_400))
}

/// A built server, bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    writer: WriterHandle,
    dispatchers: Dispatchers,
    streams: Arc<LiveStreams>,
}

impl Application {
    pub async fn build(args: ServeArgs) -> anyhow::Result<Application> {
        let db = store::connect(&args.database).await?;
        store::migrate(&db).await?;
        if args.progress {
            let counted = store::progress::backfill(&db).await?;
            if counted > 0 {
                tracing::info!(statements = counted, "progress: counted the statements it had not counted");
            }
        } else {
            store::progress::stop_keeping(&db).await?;
        }
        if let (Some(key), Some(secret)) = (&args.admin_key, &args.admin_secret) {
            credentials::upsert_admin(&db, key, secret).await?;
        }
        if credentials::count_active(&db).await? == 0 {
            tracing::warn!(
                "no credentials exist, so every xAPI request will be refused (401). Create one with \
                 `xlrs credentials create --name admin --scopes all`, or start with XLRS_ADMIN_KEY and \
                 XLRS_ADMIN_SECRET set"
            );
        }
        schema::warm_up();
        let forwarding = match &args.forwarders {
            Some(path) => ForwardingConfig::load(path)?,
            None => ForwardingConfig::default(),
        };
        let routing = Arc::new(Routing::new(&forwarding));
        // Before the writer runs: a new stream target starts at the last
        // statement stored, and no statement comes before its cursor exists.
        let now_us = chrono::Utc::now().timestamp_micros();
        for target in forwarding.targets.iter().filter(|t| t.enabled && t.kind.streams()) {
            store::forward_stream::start(&db, &target.name, now_us).await?;
        }
        crate::forward::dispatch::reexamine_parked_on_new_mappings(&db, &forwarding).await?;
        // Bound before the dispatchers start: the default node id names the port.
        let listener = TcpListener::bind(&args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
        let port = listener.local_addr()?.port();
        let configured_node = args.node_id.clone().filter(|n| !n.trim().is_empty());
        let node = configured_node.unwrap_or_else(|| crate::forward::dispatch::default_node_id(port));
        crate::forward::dispatch::release_claims(&db, &node).await?;
        let metrics = Arc::new(Metrics::new()?);
        let forward_db =
            if forwarding.targets.is_empty() { None } else { store::connect_relaxed(&args.database).await? };
        let dispatchers =
            Dispatchers::start(forward_db.as_ref().unwrap_or(&db), &forwarding, &routing, &metrics, &node)?;
        let (writer, writer_handle) =
            Writer::spawn(db.clone(), routing.clone(), metrics.clone(), args.progress).await?;
        let streams = Arc::new(LiveStreams::new(
            db.clone(),
            writer.filter_index().clone(),
            writer.committed(),
            args.stream_limits(),
            &metrics,
        ));
        let state = web::Data::new(AppState {
            progress: args.progress,
            db: db.clone(),
            writer,
            auth: Authenticator::new(db, args.auth_cache_ttl(), args.authority_home_page.clone()),
            page_limit: args.page_limit.max(1),
            uploads: args.upload_limits(),
            forwarding: Arc::new(forwarding),
            routing,
            metrics,
            streams: streams.clone(),
        });
        let max_body = args.max_body_bytes;
        let mut server =
            HttpServer::new(move || create_app(state.clone(), max_body)).listen(listener)?.shutdown_timeout(30);
        if let Some(workers) = args.workers {
            server = server.workers(workers);
        }
        tracing::info!(listen = %args.listen, port, "xlrs is serving xAPI under /xapi/");
        Ok(Application { port, server: server.run(), writer: writer_handle, dispatchers, streams })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server stops (SIGTERM/SIGINT drain in-flight
    /// requests first), then lets the writer commit what it holds.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        // A live stream never ends by itself: left open, actix would wait
        // its whole shutdown timeout for it. The signal that stops actix
        // also ends the streams (actix hears it too; tokio tells every
        // listener).
        let streams = self.streams.clone();
        let end_streams = tokio::spawn(async move {
            if stop_signal().await.is_ok() {
                streams.close();
            }
        });
        let served = self.server.await;
        end_streams.abort();
        self.streams.close();
        served?;
        self.writer.shutdown().await;
        self.dispatchers.stop().await;
        tracing::info!("xlrs stopped");
        Ok(())
    }
}

/// One of the signals on which actix stops the server (SIGTERM, SIGINT, SIGQUIT).
async fn stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = quit.recv() => {}
    }
    Ok(())
}
