-- HTTPS hello world for benches/tls.rs: the hello world of examples/hello.lua over TLS.
-- Run it:  ccserve --tls-cert CERT --tls-key KEY bench/tls_hello.lua [PORT]
local port = tonumber(... or 8443)
http.listen(port, function(req, res)
    res.setResponseHeader("Content-Type", "text/plain")
    res.write("Hello, world!\n")
    res.close()
end, {tls = true})
