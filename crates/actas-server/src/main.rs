//! The `actas` command. Everything lives in the library; see `actas --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Output piped into a reader that stops early (`| head`) ends the command quietly,
    // as it does every other command-line tool, instead of panicking on the closed pipe.
    sigpipe::reset();
    let args = actas_server::cli::Cli::parse();
    actas_server::cli::run(args)
}
