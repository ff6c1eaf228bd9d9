//! The `m3u-proxy` binary: read the configuration, start logging, bind, run until
//! SIGTERM or SIGINT, and turn the result into an exit code.
//!
//! Exit codes: 0 after a clean shutdown, 2 for a configuration error, 3 when the
//! address cannot be bound, 4 when the state file or runtime cannot start.

use std::process::ExitCode;

use futures_lite::StreamExt;
use m3u_proxy::config::{help_text, Command, Config};

fn main() -> ExitCode {
    let args = std::env::args_os().skip(1);
    let config = match Config::from_sources(|name| std::env::var(name).ok(), args) {
        Ok(Command::Run(config)) => *config,
        Ok(Command::Help) => {
            print!("{}", help_text());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("m3u-proxy {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("m3u-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_level);

    let listener = match std::net::TcpListener::bind(config.listen_addr()) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("m3u-proxy: cannot listen on {}: {e} (is another proxy running there? choose one with --port)", config.listen_addr());
            return ExitCode::from(3);
        }
    };
    log::info!(
        "m3u-proxy {} listening on http://{} (api token {})",
        env!("CARGO_PKG_VERSION"),
        config.listen_addr(),
        if config.api_token.is_some() {
            "required"
        } else {
            "off"
        }
    );
    match m3u_proxy::run(config, listener, termination()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("m3u-proxy: {e}");
            ExitCode::from(4)
        }
    }
}

fn init_logging(level: log::LevelFilter) {
    // ureq's trace output dumps request heads, webhook header values included: it never
    // goes below info, whatever the level.
    let quiet = level.min(log::LevelFilter::Info);
    let logger = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_module_level("ureq", quiet)
        .with_module_level("ureq_proto", quiet)
        .with_utc_timestamps();
    // Only fails if a logger is already installed, which nothing else does.
    let _ = logger.init();
}

/// Resolves at the first SIGTERM or SIGINT.
async fn termination() {
    use async_signal::{Signal, Signals};

    match Signals::new([Signal::Term, Signal::Int]) {
        Ok(mut signals) => {
            if let Some(Ok(signal)) = signals.next().await {
                log::info!("shutdown requested by signal {signal:?}");
            }
        }
        Err(e) => {
            log::error!("signals: cannot listen for SIGTERM/SIGINT ({e}); stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
