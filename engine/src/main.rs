//! The `autolake` binary.

fn main() -> std::process::ExitCode {
    autolake_engine::cli::main()
}
