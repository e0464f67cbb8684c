//! PID 1's console: its stdout and stderr are /dev/console.

use std::io::Write;

/// Write a line to the console (PID 1's stdout and stderr are /dev/console).
pub fn console(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}
