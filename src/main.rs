use clap::Parser;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    xlrs::telemetry::init();
    let cli = xlrs::cli::Cli::parse();
    match xlrs::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xlrs: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
