//! Builds one image with uplift-docker and prints the wall time in milliseconds on stdout.
//! Used by `benches/image.sh` to compare with the `docker build` CLI.
//!
//! Usage: `build_image <context> <tag> [classic|buildkit|auto]`
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Instant;

use uplift_docker::{BuildRequest, Builder, Engine, build_image};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(context), Some(tag)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: build_image <context> <tag> [classic|buildkit|auto]");
        return std::process::ExitCode::from(2);
    };
    let builder = match args.get(3).map(String::as_str) {
        Some("classic") => Builder::Classic,
        Some("buildkit") => Builder::BuildKit,
        _ => Builder::Auto,
    };
    let started = Instant::now();
    let result = async {
        let engine = Engine::connect().await?;
        let req = BuildRequest {
            context_dir: context.into(),
            tags: vec![tag.clone()],
            builder,
            ..Default::default()
        };
        build_image(&engine, &req, &mut |_| {}).await
    }
    .await;
    match result {
        Ok(_) => {
            println!("{}", started.elapsed().as_millis());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}
