//! What CraftOS does when it starts a program, and ccserve must do too: saved settings are loaded,
//! the program is named by its path under the root (in errors and `arg[0]`), and a `#!` first
//! line is skipped as the `lua` interpreter skips it.

mod common;

use std::path::{Path, PathBuf};

use common::Server;

/// A fresh, empty directory under the test tmpdir.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("program-start-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// Runs `script` with `--root root` until it exits; returns (exit code, stdout lines, stderr).
fn run(root: &Path, script: &Path) -> (Option<i32>, Vec<String>, String) {
    let root = root.to_string_lossy().into_owned();
    let script = script.to_string_lossy().into_owned();
    let mut p = Server::spawn_exact(&["--root", root.as_str(), script.as_str()]);
    let code = p.exit_code();
    (code, p.rest_of_stdout(), p.stderr_when_closed())
}

const COUNTER: &str = r#"
local runs = settings.get("counter.runs")
print("RUNS " .. tostring(runs))
print("NAME " .. tostring(settings.get("counter.name")))
settings.set("counter.runs", (runs or 0) + 1)
settings.save()
"#;

#[test]
fn saved_settings_are_loaded_before_the_script_runs() {
    let root = fresh_dir("settings");
    let script = root.join("counter.lua");
    std::fs::write(&script, COUNTER).unwrap();
    // A value saved by another program: it must survive the counter's own saves.
    std::fs::write(root.join(".settings"), "{ [\"counter.name\"] = \"kept\" }").unwrap();
    for expected in ["RUNS nil", "RUNS 1", "RUNS 2"] {
        let (code, out, err) = run(&root, &script);
        assert_eq!(code, Some(0), "stderr: {err}");
        assert_eq!(out, [expected, "NAME kept"], "stderr: {err}");
    }
    let saved = std::fs::read_to_string(root.join(".settings")).unwrap();
    assert!(saved.contains("counter.name"), "file lost a value: {saved}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_malformed_settings_file_does_not_stop_the_script() {
    let root = fresh_dir("bad-settings");
    let script = root.join("counter.lua");
    std::fs::write(&script, COUNTER).unwrap();
    std::fs::write(root.join(".settings"), "this is { not settings").unwrap();
    let (code, out, err) = run(&root, &script);
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(out, ["RUNS nil", "NAME nil"], "stderr: {err}");
    assert!(
        err.contains("/.settings is not a settings file"),
        "no warning on stderr: {err:?}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn errors_and_arg0_name_the_script_by_its_path_under_the_root() {
    let root = fresh_dir("names");
    std::fs::create_dir_all(root.join("app")).unwrap();
    let script = root.join("app/api.lua");
    std::fs::write(&script, "print('ARG0 ' .. arg[0])\n\nerror('boom')\n").unwrap();
    let (code, out, err) = run(&root, &script);
    assert_eq!(code, Some(1), "stderr: {err}");
    assert_eq!(out, ["ARG0 app/api.lua"]);
    assert!(err.contains("/app/api.lua:3: boom"), "stderr: {err}");
    let host = root.to_string_lossy().into_owned();
    assert!(
        !err.contains(&host),
        "host path leaked into the error: {err}"
    );

    // A script outside the root keeps its host path.
    let elsewhere = fresh_dir("names-outside");
    let outside = elsewhere.join("outside.lua");
    std::fs::write(&outside, "print('ARG0 ' .. arg[0])\nerror('boom')\n").unwrap();
    let (code, out, err) = run(&root, &outside);
    let host_path = outside.to_string_lossy().into_owned();
    assert_eq!(code, Some(1), "stderr: {err}");
    assert_eq!(out, [format!("ARG0 {host_path}")]);
    // Lua shortens long chunk names from the left ("...").
    assert!(
        err.contains("names-outside/outside.lua:2: boom"),
        "stderr: {err}"
    );
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&elsewhere);
}

#[test]
fn hashbang_lines_are_skipped_in_scripts_and_loaded_files() {
    let root = fresh_dir("hashbang");
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::write(
        root.join("app/mod.lua"),
        "#!/usr/bin/env lua\nreturn { answer = 42 }\n",
    )
    .unwrap();
    std::fs::write(
        root.join("app/other.lua"),
        "#!/usr/bin/lua5.2 -e nothing\nreturn 'other'\n",
    )
    .unwrap();
    std::fs::write(
        root.join("app/broken.lua"),
        "#!/usr/bin/env lua\n\nx = = 1\n",
    )
    .unwrap();
    let script = root.join("app/main.lua");
    std::fs::write(
        &script,
        "#!/usr/bin/env lua\n\
         print('REQUIRE ' .. require('mod').answer)\n\
         print('DOFILE ' .. dofile('app/other.lua'))\n\
         print('LOADFILE ' .. select(2, loadfile('app/broken.lua')))\n\
         error('line four')\n",
    )
    .unwrap();
    let (code, out, err) = run(&root, &script);
    assert_eq!(code, Some(1), "stderr: {err}");
    assert_eq!(
        out,
        [
            "REQUIRE 42",
            "DOFILE other",
            // Line numbers still count the skipped line.
            "LOADFILE /app/broken.lua:3: unexpected symbol near '='",
        ],
        "stderr: {err}"
    );
    assert!(err.contains("/app/main.lua:5: line four"), "stderr: {err}");
    let _ = std::fs::remove_dir_all(&root);
}
