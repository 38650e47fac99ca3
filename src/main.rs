//! The `arcolake` binary: parses the command line and hands over to `cli`.

mod cli;

use clap::Parser;

/// Serving a page allocates per row and per link; mimalloc keeps that off
/// the profile (glibc malloc/free were a fifth of the server's time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Worker stack size: deep (but accepted) search bodies are walked
/// recursively by serde and by the CQL2 compiler; stacks are reserved, not
/// committed, so this costs address space only.
const WORKER_STACK: usize = 16 << 20;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            #[expect(clippy::print_stderr, reason = "no runtime, no logging")]
            {
                eprintln!("error: cannot start the async runtime: {e}");
            }
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            #[expect(
                clippy::print_stderr,
                reason = "the one final error report of the process"
            )]
            {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
