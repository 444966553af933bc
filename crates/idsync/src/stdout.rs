//! Printing to stdout without panicking when nobody reads it any more.
//!
//! `println!` panics when a write fails, and writing to a pipe whose reader has gone
//! (`idsync history | head`) fails with `BrokenPipe`: Rust starts programs with SIGPIPE
//! ignored, so the process sees the error instead of being killed by the signal. Restoring the
//! default SIGPIPE handler would need `unsafe` (denied in this workspace) and would kill
//! `idsync sync` between two apps, or before a run's outcome is recorded, just because its
//! reader went away. Instead every line goes through [`line`] (the `outln!` macro), which takes
//! a closed stdout to mean "stop printing": the command finishes its work and exits with its
//! usual code.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write failed: nothing more is printed.
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Set once anything was to be printed: a `--json` document may be out already.
static PRINTED: AtomicBool = AtomicBool::new(false);

/// A write failure other than a closed reader (a full disk, say), for the exit code.
static FAILURE: Mutex<Option<String>> = Mutex::new(None);

/// `println!` that stops printing, quietly, once stdout is closed.
macro_rules! outln {
    () => {
        $crate::stdout::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::stdout::line(format_args!($($arg)*))
    };
}

/// Writes one line (`args` and a newline) to stdout, unless an earlier write failed.
pub fn line(args: fmt::Arguments<'_>) {
    PRINTED.store(true, Ordering::Relaxed);
    if STOPPED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        // Whole lines reach the reader at once (stdout is line-buffered anyway).
        .and_then(|()| out.flush());
    if let Err(error) = written {
        STOPPED.store(true, Ordering::Relaxed);
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            let mut failure = FAILURE.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert_with(|| error.to_string());
        }
    }
}

/// Why writing to stdout failed, other than its reader going away; `None` when it did not.
pub fn failure() -> Option<String> {
    FAILURE.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Whether anything was printed (or was to be, before stdout closed).
pub fn printed() -> bool {
    PRINTED.load(Ordering::Relaxed)
}
