//! `docker-compose.yml` and the `Dockerfile` against the binary they run:
//! every setting they give xlrs is one `xlrs serve` reads, the ports and
//! the database address line up across services, and Prometheus scrapes a
//! path the server serves.

use std::collections::HashMap;

use clap::CommandFactory;
use yaml_rust2::{Yaml, YamlLoader};

use crate::admin::base;
use crate::helpers::{Backend, spawn_app};

fn repository_file(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

fn compose() -> Yaml {
    YamlLoader::load_from_str(&repository_file("docker-compose.yml")).unwrap().remove(0)
}

/// `${NAME:-default}` as Compose fills it in with `NAME` unset (and
/// `${NAME:?message}` as set to `x`).
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("a closed ${");
        let expr = &rest[start + 2..end];
        out.push_str(match (expr.split_once(":-"), expr.contains(":?")) {
            (Some((_, default)), _) => default,
            (None, true) => "x",
            (None, false) => "",
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A service's `environment`, as a map with the defaults filled in.
fn environment(service: &Yaml) -> HashMap<String, String> {
    let map = service["environment"].as_hash().expect("environment as a map");
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                other => panic!("{k:?}: {other:?}"),
            };
            (k.as_str().unwrap().to_owned(), interpolate(&value))
        })
        .collect()
}

/// The environment variables `xlrs serve` reads.
fn serve_settings() -> Vec<String> {
    let cli = xlrs::cli::Cli::command();
    let serve = cli.find_subcommand("serve").expect("a serve command");
    serve.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect()
}

fn port_of(address: &str) -> &str {
    address.rsplit_once(':').expect("host:port").1
}

#[test]
fn compose_gives_xlrs_only_settings_it_reads_and_the_ports_line_up() {
    let compose = compose();
    let services = &compose["services"];
    for name in ["postgres", "xlrs", "prometheus"] {
        assert!(!services[name].is_badvalue(), "no {name} service");
    }
    let xlrs = &services["xlrs"];
    assert_eq!(xlrs["command"][0].as_str(), Some("serve"));

    let env = environment(xlrs);
    let known = serve_settings();
    for name in env.keys() {
        assert!(known.contains(name), "xlrs serve reads no {name} (it reads {known:?})");
    }
    for needed in ["XLRS_LISTEN", "DATABASE_URL", "XLRS_ADMIN_KEY", "XLRS_ADMIN_SECRET"] {
        assert!(env.contains_key(needed), "compose does not set {needed}");
    }

    let listen = port_of(&env["XLRS_LISTEN"]).to_owned();
    let published: Vec<&str> = xlrs["ports"].as_vec().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(published.iter().any(|p| p.rsplit(':').next() == Some(&listen)), "{published:?} misses port {listen}");

    let dockerfile = repository_file("Dockerfile");
    assert!(dockerfile.contains(&format!("EXPOSE {listen}")), "the Dockerfile exposes another port than {listen}");
    assert!(dockerfile.contains(&format!("XLRS_LISTEN=0.0.0.0:{listen}")));
}

#[test]
fn compose_points_xlrs_at_its_postgres_service() {
    let compose = compose();
    let services = &compose["services"];
    let postgres = environment(&services["postgres"]);
    let url = reqwest::Url::parse(&environment(&services["xlrs"])["DATABASE_URL"]).unwrap();
    assert_eq!(url.scheme(), "postgres");
    let host = url.host_str().unwrap();
    assert!(!services[host].is_badvalue(), "DATABASE_URL names {host}, which is no service");
    assert_eq!(url.username(), postgres["POSTGRES_USER"]);
    assert_eq!(url.password(), Some(postgres["POSTGRES_PASSWORD"].as_str()));
    assert_eq!(url.path(), format!("/{}", postgres["POSTGRES_DB"]));
    let started_after = &services["xlrs"]["depends_on"][host]["condition"];
    assert_eq!(started_after.as_str(), Some("service_healthy"), "xlrs would start before its database");
}

#[tokio::test]
async fn prometheus_scrapes_a_path_xlrs_serves() {
    let compose = compose();
    let listen = environment(&compose["services"]["xlrs"])["XLRS_LISTEN"].clone();
    let config = compose["configs"]["prometheus"]["content"].as_str().expect("the Prometheus configuration");
    let config = YamlLoader::load_from_str(config).unwrap().remove(0);
    let job = &config["scrape_configs"][0];
    let targets: Vec<&str> =
        job["static_configs"][0]["targets"].as_vec().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(targets, vec![format!("xlrs:{}", port_of(&listen))]);
    let path = job["metrics_path"].as_str().unwrap_or("/metrics");

    let app = spawn_app(Backend::Sqlite).await.expect("SQLite is always there");
    let res = app.client.get(format!("{}{path}", base(&app))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("xlrs_statements_stored_total"));
}

#[test]
fn interpolation_fills_in_defaults() {
    assert_eq!(interpolate("postgres://x:${P:-pw}@h/db"), "postgres://x:pw@h/db");
    assert_eq!(interpolate("${S:?set S}"), "x");
    assert_eq!(interpolate("plain"), "plain");
}
