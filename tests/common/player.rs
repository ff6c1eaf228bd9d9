//! Running Debian's media tools as a real player: a time-bounded run of a tool, and what
//! ffprobe finds in a URL (one `codec_name,codec_type` line per stream).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest a tool may run: far beyond the second or two it takes, so a slow machine
/// passes and a hang still ends.
const TOOL_LIMIT: Duration = Duration::from_secs(120);

/// Runs a tool to its end, killing it (by its own handle) if it outlives [`TOOL_LIMIT`].
pub fn run_bounded(program: &str, args: &[&str]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let deadline = Instant::now() + TOOL_LIMIT;
    while child.try_wait().expect("wait for the tool").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} ran longer than {TOOL_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("the tool's output")
}

/// The streams ffprobe finds at `url`, as `codec_name,codec_type` lines; panics with
/// ffprobe's own message when it cannot read the URL.
pub fn ffprobe_streams(url: &str) -> String {
    let args = [
        "-v",
        "error",
        "-show_entries",
        "stream=codec_type,codec_name",
        "-of",
        "csv=p=0",
        url,
    ];
    let output = run_bounded("ffprobe", &args);
    assert!(
        output.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
