//! Log callbacks: a C function receiving the library's log lines.

use super::util::c_string;
use crate::error::{Error, ErrorCode, Result};
use crate::log::{LogLevel, Logger};
use std::ffi::{c_char, c_void};

/// Receives one log line: `level` is a `cmpkit_log_level`, `line` a NUL-terminated UTF-8
/// string valid during the call only. A context's callback is called on the thread running
/// its transaction; a server's from any thread processing a request, possibly concurrently.
pub type cmpkit_log_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, level: u32, line: *const c_char)>;

/// The caller's log callback and its userdata.
struct LogSink {
    f: unsafe extern "C" fn(*mut c_void, u32, *const c_char),
    userdata: *mut c_void,
}

// SAFETY: the header states on which threads each setter's callback runs (a context's: the
// thread driving its transaction; a server's: any, concurrently), and the caller promises
// that the callback and userdata allow it.
unsafe impl Send for LogSink {}
// SAFETY: see `Send` above.
unsafe impl Sync for LogSink {}

impl LogSink {
    fn emit(&self, level: LogLevel, line: &str) {
        let line = c_string(line);
        // SAFETY: the caller's callback with its own userdata; `line` lives across the call.
        unsafe { (self.f)(self.userdata, level as u32, line.as_ptr()) };
    }
}

/// The [`Logger`] delivering lines up to `max_level` (a `cmpkit_log_level`) to `log`, or
/// `None` when `log` is NULL. Fails with [`ErrorCode::InvalidArgument`] on an unknown level.
///
/// # Safety
/// `log` and `userdata` must be usable from the threads the setter's documentation names,
/// for as long as the logger lives.
pub(crate) unsafe fn c_logger(
    max_level: u32,
    log: cmpkit_log_fn,
    userdata: *mut c_void,
) -> Result<Option<Logger>> {
    let max_level = match max_level {
        1 => LogLevel::Error,
        2 => LogLevel::Info,
        3 => LogLevel::Debug,
        l => {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("unknown log level {l}"),
            ))
        }
    };
    Ok(log.map(|f| {
        let sink = LogSink { f, userdata };
        Logger::new(max_level, move |level, line| sink.emit(level, line))
    }))
}
