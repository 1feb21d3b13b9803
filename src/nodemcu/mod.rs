//! NodeMCU's API (`../shared/seeds/004_*`): the `httpserver` module and the firmware modules
//! web scripts for ESP8266/ESP32 boards touch (`node`, `tmr`, `file`, `sjson`, `wifi`, `gpio`,
//! `adc`, the `http` client), for programs run with `--nodemcu` ([`Config::nodemcu`](crate::Config)).
//!
//! Each module's Lua half lives here as a `.lua` file; this file is their native half. A NodeMCU
//! program's main chunk returns and its callbacks go on running: `loop.lua` is the dispatcher the
//! runtime drives after the main chunk (see [`install`]), calling request, timer and task
//! callbacks as their events arrive, until no server or timer is left. `httpserver` serves on the
//! streaming engine through the stream natives lua-http's `http.server` uses too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use crate::embedded::EmbeddedLua;
use mlua::{Function, Lua, Table, Value};

use crate::craftos::args::{self, native, nothing, values};
use crate::craftos::{Api, Context};
use crate::http::listener::{BodyMode, Listener, ListenerOptions};
use crate::luahttp::server::{with_stream, Stream};

/// The event requests to `httpserver` servers arrive as (internal: `httpserver.lua` takes it).
pub const REQUEST_EVENT: &str = "ccserve_nodemcu_request";

const LOOP_LUA: EmbeddedLua = embedded_lua!("nodemcu/loop.lua");
const NODE_LUA: EmbeddedLua = embedded_lua!("nodemcu/node.lua");
const TMR_LUA: EmbeddedLua = embedded_lua!("nodemcu/tmr.lua");
const FILE_LUA: EmbeddedLua = embedded_lua!("nodemcu/file.lua");
const SJSON_LUA: EmbeddedLua = embedded_lua!("nodemcu/sjson.lua");
const BOARD_LUA: EmbeddedLua = embedded_lua!("nodemcu/board.lua");
const HTTPSERVER_LUA: EmbeddedLua = embedded_lua!("nodemcu/httpserver.lua");
const HTTP_LUA: EmbeddedLua = embedded_lua!("nodemcu/http.lua");

/// The firmware modules ccserve provides, as globals of a NodeMCU program.
pub const PROVIDED: &[&str] = &[
    "node", "tmr", "file", "sjson", "wifi", "gpio", "adc", "http", "bit",
];

/// Other NodeMCU firmware modules a script may name: an error about one of them says it is not
/// provided, rather than just "a nil value".
const KNOWN: &[&str] = &[
    "net",
    "mqtt",
    "i2c",
    "spi",
    "uart",
    "pwm",
    "pwm2",
    "ow",
    "dht",
    "ws2812",
    "ws2812_effects",
    "rtctime",
    "rtcmem",
    "rtcfifo",
    "sntp",
    "crypto",
    "encoder",
    "struct",
    "enduser_setup",
    "mdns",
    "cron",
    "websocket",
    "tls",
    "coap",
    "u8g2",
    "ucg",
    "bme280",
    "bmp085",
    "hx711",
    "ads1115",
    "apa102",
    "pipe",
    "softuart",
    "rotary",
    "sigma_delta",
    "switec",
    "tsl2561",
    "si7021",
    "gdbstub",
    "perf",
    "wps",
    "pcm",
    "color_utils",
    "rfswitch",
    "somfy",
    "tcs34725",
    "hdc1080",
    "hmc5883l",
    "l3g4200d",
    "mcp4725",
    "xpt2046",
    "gpio_pulse",
];

/// Installs the NodeMCU modules. With `config.nodemcu` set, the firmware modules become globals,
/// `require "httpserver"` works, and the dispatcher is returned for the runtime to drive once
/// the main chunk has returned. Without it, only a clear error for `require "httpserver"` is
/// installed, and `None` is returned: the globals CraftOS scripts see are left alone.
pub fn install(
    lua: &Lua,
    ctx: &Context,
    api: &Api,
    stream: &Table,
) -> mlua::Result<Option<Function>> {
    let package: Table = lua.globals().get("package")?;
    let preload: Table = package.get("preload")?;
    if !ctx.config.nodemcu {
        let refuse = lua.create_function(|_, ()| -> mlua::Result<()> {
            Err(mlua::Error::runtime(
                "module 'httpserver' is NodeMCU's: run the program with ccserve --nodemcu",
            ))
        })?;
        preload.set("httpserver", refuse)?;
        return Ok(None);
    }
    let native = lua.create_table()?;
    install_natives(lua, &native, ctx)?;
    let support = api.support.clone();
    let load = |source: EmbeddedLua, name: &str| source.compile(lua, &format!("nodemcu/{name}"));
    let event_loop: Table = load(LOOP_LUA, "loop.lua")?.call((native.clone(), support.clone()))?;
    let globals = lua.globals();
    // NodeMCU's `http` is an HTTP client with callbacks, unlike CraftOS's: it replaces CraftOS's
    // global, and is built on CraftOS's `http.request` (taken before).
    let craftos_http: Table = globals.get("http")?;
    let request: Function = craftos_http.get("request")?;
    let http: Table = load(HTTP_LUA, "http.lua")?.call((
        native.clone(),
        support.clone(),
        event_loop.clone(),
        request,
    ))?;
    globals.set("http", http)?;
    for (source, name) in [
        (NODE_LUA, "node"),
        (TMR_LUA, "tmr"),
        (FILE_LUA, "file"),
        (SJSON_LUA, "sjson"),
    ] {
        let module: Table = load(source, &format!("{name}.lua"))?.call((
            native.clone(),
            support.clone(),
            event_loop.clone(),
        ))?;
        globals.set(name, module)?;
    }
    let board: Table = load(BOARD_LUA, "board.lua")?.call((
        native.clone(),
        support.clone(),
        event_loop.clone(),
    ))?;
    for name in ["wifi", "gpio", "adc"] {
        globals.set(name, board.get::<Table>(name)?)?;
    }
    let server = load(HTTPSERVER_LUA, "httpserver.lua")?;
    let bind = lua
        .load(
            "local chunk, native, support, loop, stream = ...\n\
             return function() return chunk(native, support, loop, stream) end",
        )
        .set_name("=ccserve/nodemcu")
        .into_function()?;
    let loader: Function =
        bind.call((server, native, support, event_loop.clone(), stream.clone()))?;
    preload.set("httpserver", loader)?;
    Ok(Some(event_loop.get("run")?))
}

/// What to add to a script error: for a NodeMCU program, that the firmware module it used is
/// not provided; for another program using one of the provided modules' names, how to run it as
/// a NodeMCU program.
pub fn explain(message: &str, nodemcu: bool) -> Option<String> {
    // Lua 5.2: "attempt to index global 'mqtt' (a nil value)"; Lua 5.4: "attempt to index a nil
    // value (global 'mqtt')".
    if !message.contains("attempt to index") && !message.contains("attempt to call") {
        return None;
    }
    let name = message
        .split_once("global '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(name, _)| name)?;
    if nodemcu && KNOWN.contains(&name) {
        Some(format!(
            "(NodeMCU's '{name}' module is not provided by ccserve; provided: {}, httpserver)",
            PROVIDED.join(", ")
        ))
    } else if !nodemcu && PROVIDED.contains(&name) && !matches!(name, "bit" | "http") {
        Some("(is this a NodeMCU program? run it with ccserve --nodemcu)".to_string())
    } else {
        None
    }
}

/// Fills `native` with what the Lua halves need from the host.
fn install_natives(lua: &Lua, native_tbl: &Table, ctx: &Context) -> mlua::Result<()> {
    native_tbl.set("request_event", REQUEST_EVENT)?;
    native_tbl.set("bind_ip", ctx.config.bind.to_string())?;
    let c = ctx.clone();
    // listen(port, options) -> listener id, bound port | nil, message. Its listener is among
    // `stream_listeners`, so the stream natives' `close(id)` (lua-http's) stops it.
    native_tbl.set(
        "listen",
        native(lua, move |lua, args| {
            let port = args::integer(lua, args, 1)?;
            let Ok(port) = u16::try_from(port) else {
                return Err(args::bad_arg(1, "port out of range (0-65535)"));
            };
            let options = ListenerOptions {
                body_mode: BodyMode::Streamed,
                event: REQUEST_EVENT,
                reuse_port: false,
                v6_only: None,
                report_closed: false,
                tls: c.tls_option(args.get(1), 3)?,
            };
            let addr = SocketAddr::new(c.config.bind, port);
            match Listener::start(
                addr,
                options,
                c.config.clone(),
                c.sender.clone(),
                c.tracker.clone(),
            ) {
                Ok(listener) => {
                    let id = listener.id();
                    let bound = listener.local_addr().port();
                    c.stream_listeners.borrow_mut().insert(id, listener);
                    Ok(values(vec![
                        args::int_value(id as i64),
                        Value::Integer(mlua::Integer::from(bound)),
                    ]))
                }
                Err(e) => Ok(values(vec![
                    Value::Nil,
                    Value::String(lua.create_string(format!(
                        "{}: {addr}",
                        crate::craftos::http::bind_reason(&e)
                    ))?),
                ])),
            }
        })?,
    )?;

    // request(stream) -> method, target, has body
    native_tbl.set(
        "request",
        native(lua, |lua, args| {
            with_stream(args, |s: &mut Stream| {
                let r = s.request();
                let has_body = r.headers.iter().any(|(name, value)| {
                    name.eq_ignore_ascii_case("transfer-encoding")
                        || (name.eq_ignore_ascii_case("content-length")
                            && value.trim_ascii() != b"0")
                });
                Ok(values(vec![
                    Value::String(lua.create_string(&r.method)?),
                    Value::String(lua.create_string(&r.target)?),
                    Value::Boolean(has_body),
                ]))
            })
        })?,
    )?;

    // headers(stream) -> {name, value, ...}: names in lower case, in the order they came.
    native_tbl.set(
        "headers",
        native(lua, |lua, args| {
            with_stream(args, |s: &mut Stream| {
                let r = s.request();
                let fields = lua.create_table_with_capacity(2 * r.headers.len(), 0)?;
                for (i, (name, value)) in r.headers.iter().enumerate() {
                    fields.raw_set(2 * i + 1, name.to_ascii_lowercase())?;
                    fields.raw_set(2 * i + 2, lua.create_string(value)?)?;
                }
                Ok(values(vec![Value::Table(fields)]))
            })
        })?,
    )?;

    // peer(stream) -> ip, port of the client (nil for none)
    native_tbl.set(
        "peer",
        native(lua, |lua, args| {
            with_stream(args, |s: &mut Stream| {
                Ok(match s.request().peer {
                    Some(a) => values(vec![
                        Value::String(lua.create_string(a.ip().to_string())?),
                        Value::Integer(mlua::Integer::from(a.port())),
                    ]),
                    None => nothing(),
                })
            })
        })?,
    )?;

    // abandon(stream, status): answers a bare `status` if no response started, else cuts it.
    native_tbl.set(
        "abandon",
        native(lua, |lua, args| {
            let status = args::integer(lua, args, 2)?;
            let status = u16::try_from(status).unwrap_or(500).clamp(400, 599);
            with_stream(args, |s: &mut Stream| {
                s.exchange().abandon(status);
                Ok(nothing())
            })
        })?,
    )?;

    // report(message): an error in a callback, on stderr (the firmware prints it on its UART).
    native_tbl.set(
        "report",
        native(lua, |lua, args| {
            let message = args::bytes(lua, args, 1)?;
            eprintln!("{}", String::from_utf8_lossy(&message));
            Ok(nothing())
        })?,
    )?;

    native_tbl.set(
        "heap",
        native(lua, |_, _| Ok(values(vec![args::int_value(free_memory())])))?,
    )?;
    native_tbl.set("chip_id", i64::from(ctx.config.computer_id))?;

    let c = ctx.clone();
    native_tbl.set(
        "host_ip",
        native(lua, move |lua, _| {
            let (ip, mask, gateway) = host_ipv4(c.config.bind);
            let s = |a: Ipv4Addr| lua.create_string(a.to_string()).map(Value::String);
            Ok(values(vec![s(ip)?, s(mask)?, s(gateway)?]))
        })?,
    )?;
    let c = ctx.clone();
    native_tbl.set(
        "mac",
        native(lua, move |lua, _| {
            let mac = host_mac().unwrap_or_else(|| {
                // A locally administered address made from the chip id.
                let id = c.config.computer_id.to_be_bytes();
                format!(
                    "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
                    id[0], id[1], id[2], id[3]
                )
            });
            Ok(values(vec![Value::String(lua.create_string(mac)?)]))
        })?,
    )?;

    let sched = ctx.scheduler.clone();
    native_tbl.set(
        "uptime_us",
        native(lua, move |_, _| {
            let since = sched.borrow().started().elapsed();
            Ok(values(vec![args::int_value(
                i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
            )]))
        })?,
    )?;

    // delay_us(n): tmr.delay, which holds the CPU on the board; here it holds the Lua thread.
    native_tbl.set(
        "delay_us",
        native(lua, |lua, args| {
            let us = args::number(lua, args, 1)?;
            if us.is_nan() || us < 0.0 {
                return Err(args::bad_arg(
                    1,
                    "a number of microseconds (0 or more) expected",
                ));
            }
            // The firmware takes at most a second or so here; a longer wait is a mistake that
            // would stall every connection.
            std::thread::sleep(Duration::from_micros(us.min(10_000_000.0) as u64));
            Ok(nothing())
        })?,
    )?;

    // restart(): node.restart. The runtime ends as for os.shutdown; the `ccserve` command then
    // starts the program again (see `Runtime::restart_requested`).
    let halt = ctx.halt.clone();
    let restart = ctx.restart.clone();
    native_tbl.set(
        "restart",
        native(lua, move |_, _| {
            halt.set(true);
            restart.set(true);
            Ok(nothing())
        })?,
    )?;
    Ok(())
}

/// What `node.heap()` reports: the memory the system can still give (Linux's `MemAvailable`),
/// in bytes. Where it cannot be read, 1 GiB: any figure a board script compares with its
/// thresholds (tens of kilobytes) must read as plenty.
fn free_memory() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map(|kib| kib.saturating_mul(1024))
        .unwrap_or(1 << 30)
}

/// The host's IPv4 address, netmask and gateway, for `wifi.sta.getip()`: the address is the one
/// outgoing traffic would leave from (a UDP socket "connected" to a documentation address sends
/// nothing), else the bind address, else loopback; mask and gateway from Linux's routing table,
/// `0.0.0.0` where unknown.
fn host_ipv4(bind: IpAddr) -> (Ipv4Addr, Ipv4Addr, Ipv4Addr) {
    let ip = UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .ok()
        .and_then(|a| match a.ip() {
            IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
            _ => None,
        })
        .or(match bind {
            IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
            _ => None,
        })
        .unwrap_or(Ipv4Addr::LOCALHOST);
    let (mut mask, mut gateway) = (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
    if ip.is_loopback() {
        mask = Ipv4Addr::new(255, 0, 0, 0);
    }
    for route in routes() {
        if route.destination == 0 && route.gateway != 0 {
            gateway = Ipv4Addr::from(route.gateway);
        } else if route.mask != 0 && u32::from(ip) & route.mask == route.destination {
            mask = Ipv4Addr::from(route.mask);
        }
    }
    (ip, mask, gateway)
}

/// One row of `/proc/net/route`, addresses in host order.
struct Route {
    iface: String,
    destination: u32,
    gateway: u32,
    mask: u32,
}

/// Linux's IPv4 routing table (empty elsewhere or when unreadable).
fn routes() -> Vec<Route> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    // The file prints each address as the hex of its in-memory (network order) bytes, read
    // as a little-endian word.
    let addr = |hex: &str| {
        u32::from_str_radix(hex, 16)
            .ok()
            .map(|v| u32::from_be_bytes(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(Route {
                iface: f.first()?.to_string(),
                destination: addr(f.get(1)?)?,
                gateway: addr(f.get(2)?)?,
                mask: addr(f.get(7)?)?,
            })
        })
        .collect()
}

/// The MAC address of the interface the default route leaves from, as `aa:bb:cc:dd:ee:ff`.
fn host_mac() -> Option<String> {
    let iface = routes()
        .into_iter()
        .find(|r| r.destination == 0)
        .map(|r| r.iface)?;
    let mac = std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).ok()?;
    let mac = mac.trim();
    (mac.len() == 17).then(|| mac.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_missing_firmware_modules_by_name() {
        let m = "/init.lua:3: attempt to index global 'mqtt' (a nil value)";
        assert!(explain(m, true)
            .unwrap()
            .contains("'mqtt' module is not provided"));
        assert_eq!(explain(m, false), None);
        let m = "/init.lua:1: attempt to call global 'tmr' (a nil value)";
        assert!(explain(m, false).unwrap().contains("--nodemcu"));
        assert_eq!(
            explain("attempt to index global 'foo' (a nil value)", true),
            None
        );
    }

    #[test]
    fn route_addresses_read_in_network_order() {
        // 0100A8C0 is 192.168.0.1 as /proc/net/route prints it on a little-endian host.
        if cfg!(target_endian = "little") {
            let addr =
                |hex: &str| u32::from_be_bytes(u32::from_str_radix(hex, 16).unwrap().to_ne_bytes());
            assert_eq!(
                Ipv4Addr::from(addr("0100A8C0")),
                Ipv4Addr::new(192, 168, 0, 1)
            );
            assert_eq!(
                Ipv4Addr::from(addr("00FFFFFF")),
                Ipv4Addr::new(255, 255, 255, 0)
            );
        }
    }
}
