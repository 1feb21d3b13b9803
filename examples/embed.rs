//! Embedding ccserve in a Rust program: build a runtime with a config, give the script a Rust
//! function, feed it events from another thread, and run a script until it ends.
//!
//! Run it: `cargo run --example embed`. It serves one request to itself and exits.

use ccserve::{Config, EventValue, Runtime};

const SCRIPT: &str = r#"
-- Wait for the host's three `tick` events.
for i = 1, 3 do
    local _, n = os.pullEvent("tick")
    print("tick " .. n)
end
-- Serve one request (made by ourselves) on an OS-chosen port.
local port = http.addListener(0)
parallel.waitForAll(function()
    local _, _, req, res = os.pullEvent("http_request")
    res.write("hello from " .. host_name() .. ", you asked for " .. req.getURL())
    res.close()
end, function()
    local h = assert(http.get("http://127.0.0.1:" .. port .. "/embedded"))
    print(h.readAll())
end)
http.removeListener(port)
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config {
        bind: "127.0.0.1".parse()?,
        ..Config::default()
    };
    let mut runtime = Runtime::new(config)?;
    runtime.register_function("host_name", |_, ()| Ok("the embed example"))?;

    // Any thread can send events into the script.
    let events = runtime.sender();
    let feeder = std::thread::spawn(move || {
        for n in 1..=3 {
            if events
                .queue_event("tick", vec![EventValue::Integer(n)])
                .is_err()
            {
                break; // the script has ended
            }
        }
    });

    runtime.run_chunk(SCRIPT, "embedded.lua", &[])?;
    let _ = feeder.join();
    Ok(())
}
