//! Process behaviour of the `ccserve` command: flags, usage errors, exit statuses, script
//! arguments and signals.
//!
//! Every wait is bounded; nothing sleeps to synchronise (tests wait on a line of stdout or the
//! process exiting).

mod common;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use common::{Server, WAIT};

/// Runs `source` as a script (bound to 127.0.0.1) with `script_args`.
fn script(source: &str, script_args: &[&str]) -> Server {
    Server::spawn(source, &[], script_args)
}

/// Asserts `stderr` is exactly one non-empty line.
fn assert_one_line(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got {stderr:?}"
    );
    assert!(!lines[0].trim().is_empty(), "empty error line");
}

// ---------------------------------------------------------------------------------------------
// Flags and usage errors
// ---------------------------------------------------------------------------------------------

#[test]
fn version_flag_prints_version_and_exits_0() {
    let mut p = Server::spawn_exact(&["--version"]);
    assert_eq!(p.exit_code(), Some(0));
    let out = p.rest_of_stdout();
    assert_eq!(
        out,
        [format!("ccserve {}", env!("CARGO_PKG_VERSION"))],
        "stdout"
    );
}

#[test]
fn help_flag_prints_usage_and_exits_0() {
    let mut p = Server::spawn_exact(&["--help"]);
    assert_eq!(p.exit_code(), Some(0));
    let out = p.rest_of_stdout().join("\n");
    assert!(out.contains("Usage: ccserve"), "stdout: {out}");
    for flag in [
        "--bind",
        "--max-body",
        "--max-connections",
        "--stream-buffer",
        "--max-stream-body",
        "--response-timeout",
        "--keep-alive-timeout",
        "--header-timeout",
        "--body-timeout",
        "--nodemcu",
        "--tls-cert",
        "--tls-key",
        "--ca-file",
    ] {
        assert!(out.contains(flag), "--help does not mention {flag}");
    }
    assert_eq!(p.stderr_when_closed(), "");
}

#[test]
fn help_and_version_into_a_closed_pipe_exit_quietly() {
    // `ccserve --help | head -1`: stdout's reader is gone before anything is written.
    for flag in ["--help", "--version"] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(common::bin())
            .arg(flag)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{flag}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{flag}: {stderr}");
    }
}

#[test]
fn unknown_flag_is_a_one_line_usage_error_with_status_2() {
    let script = common::script_file("print('should not run')");
    let mut p = Server::spawn_exact(&[OsString::from("--no-such-flag"), script.into()]);
    assert_eq!(p.exit_code(), Some(2));
    let stderr = p.stderr_when_closed();
    assert_one_line(&stderr);
    assert!(stderr.contains("--no-such-flag"), "stderr: {stderr}");
    assert!(p.rest_of_stdout().is_empty(), "the script ran");
}

#[test]
fn a_bad_busy_poll_is_a_one_line_usage_error_naming_the_flag() {
    let script = common::script_file("print('should not run')");
    for (value, says) in [
        ("soon", "'soon' is not a number of microseconds"),
        ("-5", "'-5' is not a number of microseconds"),
        ("20000", "more than 10000"),
    ] {
        let mut p = Server::spawn_exact(&[
            OsString::from("--busy-poll"),
            OsString::from(value),
            script.clone().into(),
        ]);
        assert_eq!(p.exit_code(), Some(2), "--busy-poll {value}");
        let stderr = p.stderr_when_closed();
        assert_one_line(&stderr);
        assert!(
            stderr.contains("--busy-poll") && stderr.contains(says),
            "--busy-poll {value}: {stderr}"
        );
        assert!(p.rest_of_stdout().is_empty(), "the script ran");
    }
}

#[test]
fn missing_script_is_a_one_line_usage_error_with_status_2() {
    let mut none = Server::spawn_exact::<&str>(&[]);
    assert_eq!(none.exit_code(), Some(2));
    assert_one_line(&none.stderr_when_closed());

    let mut absent = Server::spawn_exact(&["/nonexistent/dir/no-such-script.lua"]);
    assert_eq!(absent.exit_code(), Some(2));
    let stderr = absent.stderr_when_closed();
    assert_one_line(&stderr);
    assert!(stderr.contains("no-such-script.lua"), "stderr: {stderr}");

    let dir = env!("CARGO_TARGET_TMPDIR");
    let mut directory = Server::spawn_exact(&[dir]);
    assert_eq!(directory.exit_code(), Some(2));
    let stderr = directory.stderr_when_closed();
    assert_one_line(&stderr);
    assert!(
        stderr.contains("is a directory, not a script"),
        "stderr: {stderr}"
    );
}

#[test]
fn help_descriptions_start_in_one_column() {
    let mut p = Server::spawn_exact(&["--help"]);
    assert_eq!(p.exit_code(), Some(0));
    let out = p.rest_of_stdout();
    let options: Vec<&String> = out
        .iter()
        .skip_while(|l| l.as_str() != "Options:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(options.len() > 20, "options section: {options:?}");
    // Each line is an option and its description, or a continuation of the description; either
    // way the description text starts in the same column, and no line is wider than 100.
    // The column where the description starts: after the flag and two or more spaces, or after
    // the indentation of a continuation line.
    let column = |l: &str| {
        let indent = l.len() - l.trim_start().len();
        let rest = &l[indent..];
        if !rest.starts_with('-') {
            return indent;
        }
        let gap = rest.find("  ").unwrap_or(rest.len());
        let after = &rest[gap..];
        indent + gap + (after.len() - after.trim_start().len())
    };
    let first = column(options[0]);
    for l in &options {
        assert_eq!(column(l), first, "misaligned help line: {l:?}");
        assert!(l.len() <= 100, "help line too wide: {l:?}");
    }
}

#[test]
fn syntax_error_exits_1_with_the_message() {
    let mut p = script("print('before')\nlocal x = = 1\n", &[]);
    assert_eq!(p.exit_code(), Some(1));
    let stderr = p.stderr_when_closed();
    assert!(
        stderr.contains(":2:") && stderr.contains("unexpected symbol near '='"),
        "stderr: {stderr}"
    );
    assert!(
        p.rest_of_stdout().is_empty(),
        "a script with a syntax error ran"
    );
}

#[test]
fn script_arguments_reach_dots_and_arg() {
    let mut p = script(
        "local n = select('#', ...)\n\
         print('N ' .. n)\n\
         for i = 1, n do print('DOT ' .. i .. ' [' .. select(i, ...) .. ']') end\n\
         print('ARGN ' .. #arg)\n\
         for i = 1, #arg do print('ARG ' .. i .. ' [' .. arg[i] .. ']') end\n\
         print('ARG0 ' .. type(arg[0]))\n",
        &["one", "two words", "--looks-like-a-flag", ""],
    );
    assert_eq!(p.exit_code(), Some(0), "stderr: {}", p.stderr_when_closed());
    assert_eq!(
        p.rest_of_stdout(),
        [
            "N 4",
            "DOT 1 [one]",
            "DOT 2 [two words]",
            "DOT 3 [--looks-like-a-flag]",
            "DOT 4 []",
            "ARGN 4",
            "ARG 1 [one]",
            "ARG 2 [two words]",
            "ARG 3 [--looks-like-a-flag]",
            "ARG 4 []",
            "ARG0 string",
        ]
    );
}

#[test]
fn script_that_returns_exits_0() {
    let mut p = script("print('done')", &[]);
    assert_eq!(p.exit_code(), Some(0));
    assert_eq!(p.rest_of_stdout(), ["done"]);
}

#[test]
fn uncaught_runtime_error_exits_1_with_message_and_traceback() {
    let mut p = script("local function f() error('kaboom') end\nf()\n", &[]);
    assert_eq!(p.exit_code(), Some(1));
    let stderr = p.stderr_when_closed();
    assert!(stderr.contains("kaboom"), "stderr: {stderr}");
    assert!(stderr.contains("stack traceback"), "stderr: {stderr}");
}

// ---------------------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------------------

#[test]
fn sigint_terminates_a_script_blocked_in_pull_event_with_status_130() {
    let mut p = script(
        "print('READY')\nos.pullEvent()\nprint('NOT REACHED')\n",
        &[],
    );
    p.expect_line("READY");
    assert!(p.signal("INT"), "kill -INT failed");
    assert_eq!(p.exit_code(), Some(130));
    let stderr = p.stderr_when_closed();
    assert!(
        stderr.lines().any(|l| l.trim() == "Terminated"),
        "stderr: {stderr:?}"
    );
    assert!(p.rest_of_stdout().is_empty());
}

#[test]
fn pull_event_raw_sees_terminate_and_a_second_sigint_exits_at_once() {
    let mut p = script(
        "print('READY')\n\
         local ev = os.pullEventRaw()\n\
         print('EVENT ' .. tostring(ev))\n\
         os.queueEvent('still_alive', 42)\n\
         local name, n = os.pullEventRaw('still_alive')\n\
         print('ALIVE ' .. name .. ' ' .. n)\n\
         print('WAITING')\n\
         while true do os.pullEventRaw() end\n",
        &[],
    );
    p.expect_line("READY");
    assert!(p.signal("INT"), "kill -INT failed");
    p.expect_line("EVENT terminate");
    p.expect_line("ALIVE still_alive 42");
    p.expect_line("WAITING");
    let t = Instant::now();
    assert!(p.signal("INT"), "kill -INT failed");
    let status = p.wait_exit(WAIT).expect("second SIGINT ends the process");
    let elapsed = t.elapsed();
    println!("second SIGINT: exited after {elapsed:?}");
    assert_eq!(status.code(), Some(130));
    assert!(elapsed < Duration::from_secs(5), "exit took {elapsed:?}");
}
