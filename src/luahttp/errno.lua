-- cqueues.errno: the error numbers lua-http's functions return (Linux values) and strerror.
local errno = {
    ENOENT = 2, EINTR = 4, EIO = 5, E2BIG = 7, EBADF = 9, EAGAIN = 11, ENOMEM = 12,
    EACCES = 13, EEXIST = 17, EINVAL = 22, EMFILE = 24, ENOSPC = 28, EPIPE = 32,
    ERANGE = 34, EPROTO = 71, EBADMSG = 74, EILSEQ = 84, ENOTSOCK = 88, EMSGSIZE = 90,
    EPROTONOSUPPORT = 93, EOPNOTSUPP = 95, EAFNOSUPPORT = 97, EADDRINUSE = 98,
    EADDRNOTAVAIL = 99, ENETUNREACH = 101, ECONNABORTED = 103, ECONNRESET = 104,
    ENOBUFS = 105, EISCONN = 106, ENOTCONN = 107, ETIMEDOUT = 110, ECONNREFUSED = 111,
    EHOSTUNREACH = 113, EALREADY = 114, EINPROGRESS = 115, ESTALE = 116,
}
errno.EWOULDBLOCK = errno.EAGAIN

local messages = {
    [2] = "No such file or directory", [4] = "Interrupted system call",
    [5] = "Input/output error", [7] = "Argument list too long",
    [9] = "Bad file descriptor", [11] = "Resource temporarily unavailable",
    [12] = "Cannot allocate memory", [13] = "Permission denied", [17] = "File exists",
    [22] = "Invalid argument", [24] = "Too many open files",
    [28] = "No space left on device", [32] = "Broken pipe",
    [34] = "Numerical result out of range", [71] = "Protocol error",
    [74] = "Bad message", [84] = "Invalid or incomplete multibyte or wide character",
    [88] = "Socket operation on non-socket", [90] = "Message too long",
    [93] = "Protocol not supported", [95] = "Operation not supported",
    [97] = "Address family not supported by protocol", [98] = "Address already in use",
    [99] = "Cannot assign requested address", [101] = "Network is unreachable",
    [103] = "Software caused connection abort", [104] = "Connection reset by peer",
    [105] = "No buffer space available", [106] = "Transport endpoint is already connected",
    [107] = "Transport endpoint is not connected", [110] = "Connection timed out",
    [111] = "Connection refused", [113] = "No route to host",
    [114] = "Operation already in progress", [115] = "Operation now in progress",
    [116] = "Stale file handle",
}

-- The message for error number `n` ("Unknown error n" for one this table does not name).
function errno.strerror(n)
    return messages[n] or ("Unknown error " .. tostring(n))
end

-- Numbers back to names, as cqueues offers (errno[110] == "ETIMEDOUT").
local names = {}
for name, n in pairs(errno) do
    if type(n) == "number" and not names[n] then names[n] = name end
end
for n, name in pairs(names) do errno[n] = name end

return errno
