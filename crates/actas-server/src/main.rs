//! The `actas` command. Everything lives in the library; see `actas --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = actas_server::cli::Cli::parse();
    actas_server::cli::run(args)
}
