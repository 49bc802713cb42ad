//! The `threadcart` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    threadcart::cli::main()
}
