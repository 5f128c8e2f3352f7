//! Logging to a caller-set sink: what the library sent and received, which check failed.

use std::sync::Arc;

/// How important a log line is.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// A transaction failed: the check and the peer's verdict.
    Error = 1,
    /// A transaction's steps: messages received and their outcome.
    Info = 2,
    /// Details: each message sent, with its size.
    Debug = 3,
}

impl LogLevel {
    /// The level's name.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// A log sink: called with each line's level and text.
pub type LogSink = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

/// Receives log lines up to a maximum level.
#[derive(Clone)]
pub struct Logger {
    /// Lines above this level are not formatted or delivered.
    pub max_level: LogLevel,
    /// The sink.
    pub sink: LogSink,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("max_level", &self.max_level)
            .finish_non_exhaustive()
    }
}

impl Logger {
    /// A logger delivering lines up to `max_level` to `sink`.
    pub fn new(max_level: LogLevel, sink: impl Fn(LogLevel, &str) + Send + Sync + 'static) -> Self {
        Logger {
            max_level,
            sink: Arc::new(sink),
        }
    }

    /// Deliver the line `line()` at `level`, formatting it only if it is wanted.
    pub fn log(&self, level: LogLevel, line: impl FnOnce() -> String) {
        if level <= self.max_level {
            (self.sink)(level, &line());
        }
    }
}

/// Log through an optional logger (nothing is formatted without one).
pub(crate) fn log(logger: &Option<Logger>, level: LogLevel, line: impl FnOnce() -> String) {
    if let Some(l) = logger {
        l.log(level, line);
    }
}
