//! Process-level behaviour of the CraftOS system APIs: `os.shutdown`/`os.reboot` end the program
//! with status 0, `--id`/`--label` reach the script, `read()` takes lines from stdin.
//!
//! Every wait is bounded; nothing sleeps to synchronise.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, script_file, Server, WAIT};

/// Well under `WAIT`: a halted script must not linger until some timeout.
const PROMPT: Duration = Duration::from_secs(10);

/// Runs `source`, asserts it exits 0 within `PROMPT` with nothing on stderr; returns its stdout.
fn exits_cleanly(source: &str, extra: &[&str]) -> Vec<String> {
    let mut p = Server::spawn(source, extra, &[]);
    let started = Instant::now();
    let status = p.wait_exit(PROMPT).unwrap_or_else(|| {
        panic!(
            "ccserve still running after {PROMPT:?}; stderr so far:\n{}",
            p.stderr()
        )
    });
    assert!(
        started.elapsed() < PROMPT,
        "took {:?} to exit",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(0), "stderr:\n{}", p.stderr());
    assert_eq!(p.stderr_when_closed(), "", "stderr must be empty");
    p.rest_of_stdout()
}

#[test]
fn shutdown_ends_the_program_with_status_0() {
    let out = exits_cleanly(
        "print('before')\n\
         os.shutdown()\n\
         print('after')\n\
         while true do os.pullEvent() end\n",
        &[],
    );
    assert_eq!(out, vec!["before"]);
}

#[test]
fn reboot_ends_the_program_with_status_0() {
    let out = exits_cleanly(
        "print('before')\n\
         os.reboot()\n\
         print('after')\n\
         while true do os.pullEvent() end\n",
        &[],
    );
    assert_eq!(out, vec!["before"]);
}

#[test]
fn shutdown_inside_pcall_and_parallel_still_ends_the_program() {
    let out = exits_cleanly(
        "http.addListener(0)\n\
         parallel.waitForAny(\n\
           function() while true do os.pullEvent() end end,\n\
           function()\n\
             print('stopping')\n\
             print(pcall(os.shutdown))\n\
             print('after')\n\
             while true do os.pullEvent() end\n\
           end)\n\
         print('returned')\n",
        &[],
    );
    assert_eq!(out, vec!["stopping"]);
}

#[test]
fn script_error_without_shutdown_still_fails() {
    let mut p = Server::spawn("error('boom', 0)\n", &[], &[]);
    assert_eq!(p.exit_code(), Some(1));
    assert!(p.stderr_when_closed().contains("boom"));
}

#[test]
fn id_and_label_reach_the_script() {
    let out = exits_cleanly(
        "print(os.getComputerID(), os.computerID())\n\
         print(os.getComputerLabel(), os.computerLabel())\n\
         os.setComputerLabel('changed')\n\
         print(os.getComputerLabel())\n",
        &["--id", "42", "--label", "web box"],
    );
    assert_eq!(out, vec!["42\t42", "web box\tweb box", "changed"]);
}

#[test]
fn defaults_are_id_0_and_no_label() {
    let out = exits_cleanly(
        "print(os.getComputerID(), select('#', os.getComputerLabel()))\n",
        &[],
    );
    assert_eq!(out, vec!["0\t0"]);
}

#[test]
fn print_write_and_print_error_reach_stdout_and_stderr() {
    let mut p = Server::spawn(
        "write('a') write(1) print(' b', 2, nil, true)\n\
         printError('oops', 3)\n\
         print(print('x\\ny'))\n",
        &[],
        &[],
    );
    assert_eq!(p.exit_code(), Some(0), "stderr:\n{}", p.stderr());
    assert_eq!(p.stderr_when_closed(), "oops\t3\n");
    assert_eq!(
        p.rest_of_stdout(),
        vec!["a1 b\t2\tnil\ttrue", "x", "y", "2"]
    );
}

#[test]
fn read_takes_lines_from_stdin_and_nil_at_eof() {
    let script = script_file(
        "local n = 0\n\
         while true do\n\
           local line = read()\n\
           if line == nil then break end\n\
           n = n + 1\n\
           print(('%d %q'):format(n, line))\n\
         end\n\
         print('eof', read())\n",
    );
    let mut child = Command::new(bin())
        .arg("--bind")
        .arg("127.0.0.1")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ccserve");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"first line\nsecond\r\n\nlast without newline")
        .unwrap();
    drop(stdin);
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ccserve did not exit within {WAIT:?}");
        }
        // std has no wait-with-timeout for a child process.
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap();
    let err = err.join().unwrap();
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    assert_eq!(err, "");
    assert_eq!(
        out,
        "1 \"first line\"\n2 \"second\"\n3 \"\"\n4 \"last without newline\"\neof\tnil\n"
    );
}
