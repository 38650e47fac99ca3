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

/// An export parses and drops pages of thousands of JSON documents, one
/// after the other. By default mimalloc hands freed memory back to the
/// system, and the next page faults it in again (zeroed): a sixth of an
/// export's time (`perf`; 9.9 s instead of 11.9 s for 100,000 items).
/// Its option is read from the environment when the process starts, and
/// setting it needs unsafe code, so the process runs itself again with the
/// variable set, unless the caller chose a value.
const PURGE_DELAY: &str = "MIMALLOC_PURGE_DELAY";

fn keep_freed_memory() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os(PURGE_DELAY).is_some() {
        return;
    }
    // The running binary itself, even if its file was replaced since.
    let exe = std::path::Path::new("/proc/self/exe");
    let exe = if exe.exists() {
        exe.to_path_buf()
    } else if let Ok(exe) = std::env::current_exe() {
        exe
    } else {
        return;
    };
    let mut args = std::env::args_os();
    // Only returns when the exec failed: the export then goes on with the
    // allocator's default (and SIGPIPE at its default disposition, which
    // the attempt restored).
    let _ = std::process::Command::new(exe)
        .arg0(args.next().unwrap_or_default())
        .args(args)
        .env(PURGE_DELAY, "-1")
        .exec();
}

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    if args.keeps_freed_memory() {
        keep_freed_memory();
    }
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
