-- http.version: which lua-http this is compatible with.
return {
    name = "lua-http",
    version = "0.4",
}
