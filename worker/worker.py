# gowsgi worker: runs one WSGI application for the gowsgi host.
#
# The host runs this program from a memfd the worker inherits, by path
# (python -u /proc/self/fd/N APP; see as_started_by_c), with an inherited
# socket (fd in GOWSGI_FD), and speaks a framed protocol over it. Every
# frame is a 9-byte header, type (1 byte), request id (uint32 LE) and
# payload length (uint32 LE), then the payload. See protocol.go for the
# frame types; this file mirrors them.
#
# Host -> worker:
#   R  request: uint32 environ length, environ (marshal dict), body bytes
#   M  request whose body is in the shared body area (GOWSGI_BODY_FD, mapped
#      read-only): uint32 environ length, environ, uint64 offset, uint64 length
#   C  credit: uint32 bytes the host has passed on for that request
#   K  cancel: the client went away; stop iterating the response
# Host -> worker, on the control socket (GOWSGI_CTL_FD), read by its own thread
# so that it is heard while the app runs:
#   W  withdraw: if the request has not begun, drop it and answer N
# Worker -> host:
#   H  ready (id 0): "pid", or "pid bodies" if the shared body area is mapped
#   F  failed to load the app (id 0): traceback text
#   S  start: "status\r\nName: value\r\n..." (validated here)
#   B  body chunk
#   D  body from a file: uint64 offset, uint64 length; the open file
#      descriptor rides along (SCM_RIGHTS) for the host to sendfile
#   E  end of response
#   X  the app failed: traceback text (before S: the host answers 500;
#      after: the host cuts the connection)
#   N  withdrawn: the request was not run (answer to W); the host sends it
#      to another worker
import io
import marshal
import mmap
import os
import re
import signal
import socket
import stat
import struct
import sys
import threading
import traceback

HDR = struct.Struct("<BII")
HDR_SIZE = HDR.size
U32 = struct.Struct("<I")
READ_SIZE = 65536
# Unacknowledged response bytes one request may have in flight to the host
# before its thread waits for credit (backpressure from slow clients).
WINDOW = 1 << 20

T_REQUEST, T_MAPPED, T_CREDIT, T_CANCEL, T_WITHDRAW = ord("R"), ord("M"), ord("C"), ord("K"), ord("W")
T_WITHDRAWN = ord("N")
T_READY, T_FAILED, T_START, T_BODY, T_END, T_ABORT, T_FILE = (
    ord("H"), ord("F"), ord("S"), ord("B"), ord("E"), ord("X"), ord("D"))
FILE = struct.Struct("<QQ")
PLACE = FILE  # offset and length, of a file range or of a body in the shared area
IOV_MAX = 512

STATUS_RE = re.compile(r"[1-9][0-9][0-9] [\t\x20-\x7e\x80-\xff]*\Z")
TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
VALUE_RE = re.compile(r"[\t\x20-\x7e\x80-\xff]*\Z")


RUN, CANCELLED, WITHDRAWN = 0, 1, 2  # Conn.begin's verdicts


class WSGIError(Exception):
    """The application broke a rule of PEP 3333."""


class Cancelled(Exception):
    """The client went away: stop producing the response."""


class Input:
    """wsgi.input over the request body the host read in full: buf[start:end],
    where buf is the request frame (bytes, or a bytearray for a large one)
    or the shared body area (mmap). Reads copy only what they return."""

    __slots__ = ("_buf", "_view", "_pos", "_len")

    def __init__(self, buf, start, end):
        self._buf = buf
        # Slicing bytes or an mmap gives bytes; a bytearray's memoryview
        # gives a view that bytes() copies once.
        self._view = memoryview(buf) if type(buf) is bytearray else buf
        self._pos = start
        self._len = end

    def _get(self, pos, end):
        data = self._view[pos:end]
        return data if type(data) is bytes else bytes(data)

    def detach(self):
        """End of the request: the body's memory may be reused at once."""
        self._buf = self._view = b""
        self._pos = self._len = 0

    def read(self, size=-1):
        pos = self._pos
        if size is None or size < 0:
            end = self._len
        else:
            end = min(self._len, pos + max(size, 0))
        self._pos = end
        return self._get(pos, end)

    def readline(self, size=-1):
        pos = self._pos
        nl = self._buf.find(b"\n", pos, self._len)
        end = self._len if nl < 0 else nl + 1
        if size is not None and size >= 0:
            end = min(end, pos + size)
        self._pos = end
        return self._get(pos, end)

    def readlines(self, hint=-1):
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class Errors:
    """wsgi.errors: text to the worker's stderr, which the host logs line by line."""

    def write(self, s):
        sys.stderr.write(s)

    def writelines(self, seq):
        for s in seq:
            sys.stderr.write(s)

    def flush(self):
        sys.stderr.flush()


class FileWrapper:
    """wsgi.file_wrapper: iterates a file-like object in blocks."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        size = self.blksize
        while True:
            data = read(size)
            if not data:
                return
            yield data


def frame(kind, rid, payload=b""):
    return HDR.pack(kind, rid, len(payload)) + payload


class Conn:
    """The socket to the host: frame writing with per-request flow control.

    A request's thread waits when WINDOW bytes of its response are
    unacknowledged. In threaded mode a reader thread applies credit frames;
    with one thread, the waiting thread reads the socket itself (pump),
    applying credits and keeping requests for later.
    """

    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()
        # credit_lock is credit_cv's lock, taken directly where nobody waits
        # or is notified (a C-level context manager, cheaper per request).
        self.credit_lock = threading.Lock()
        self.credit_cv = threading.Condition(self.credit_lock)
        self.unacked = {}  # request id -> bytes sent but not yet credited
        self.cancelled = set()  # request ids whose client went away
        self.withdrawn = set()  # request ids the host took back before they began
        self.done = set()  # recent request ids that ended (a withdraw of one is ignored)
        self.closed = False
        self.pump = None  # set in inline mode: reads one batch, returns False at EOF
        self.pending = []  # requests read by pump, to run next

    def send(self, bufs):
        """Send a list of buffers with as few system calls as can be
        (sendmsg gathers them; nothing is joined)."""
        with self.lock:
            sock = self.sock
            if len(bufs) == 1:
                sock.sendall(bufs[0])
                return
            bufs = list(bufs)
            while bufs:
                n = sock.sendmsg(bufs[:IOV_MAX])
                while n:
                    first = len(bufs[0])
                    if n >= first:
                        n -= first
                        bufs.pop(0)
                    else:
                        bufs[0] = memoryview(bufs[0])[n:]
                        n = 0

    def send_fd(self, data, fd):
        """Send data with fd attached to its first byte (SCM_RIGHTS)."""
        with self.lock:
            n = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
            if n < len(data):
                self.sock.sendall(memoryview(data)[n:])

    def credit(self, rid, n):
        with self.credit_cv:
            if rid in self.unacked:
                self.unacked[rid] -= n
                self.credit_cv.notify_all()

    def begin(self, rid):
        """Start the accounting of rid. Returns RUN, CANCELLED (its client
        left while it waited here: answer with an empty end) or WITHDRAWN
        (the host took it back: answer nothing)."""
        with self.credit_lock:
            if rid in self.withdrawn:
                self.withdrawn.discard(rid)
                return WITHDRAWN
            self.unacked[rid] = 0
            return CANCELLED if rid in self.cancelled else RUN

    def withdraw(self, rid):
        """The host asks for rid back: give it up unless it has begun (or
        ended: its frames may still be on their way to the host, and an
        answer now would overtake them and have it run twice)."""
        with self.credit_lock:
            if rid in self.unacked or rid in self.done:
                return
            self.withdrawn.add(rid)
            if len(self.withdrawn) > 256:
                self.withdrawn = {r for r in self.withdrawn if r > rid - 10000}
        self.send([HDR.pack(T_WITHDRAWN, rid, 0)])

    def finish(self, rid):
        with self.credit_lock:
            self.unacked.pop(rid, None)
            done = self.done
            done.add(rid)
            if len(done) > 1024:
                # The host withdraws only requests it has no end of: old
                # ones have long reached it.
                self.done = {r for r in done if r > rid - 256}
            self.cancelled.discard(rid)
            if len(self.cancelled) > 256:
                # Cancels that came after their request ended: drop the old.
                self.cancelled = {r for r in self.cancelled if r > rid - 10000}

    def cancel(self, rid):
        with self.credit_cv:
            self.cancelled.add(rid)
            self.credit_cv.notify_all()

    def is_cancelled(self, rid):
        """Whether the host cancelled rid; in inline mode, first reads
        whatever control frames have arrived, without waiting."""
        if self.pump is not None:
            self.pump(False)
        return rid in self.cancelled

    def wait_window(self, rid, n):
        """Account n body bytes for rid, first waiting while its window is full."""
        if self.pump is not None:
            while self.unacked.get(rid, 0) >= WINDOW and rid not in self.cancelled:
                if not self.pump():
                    raise ConnectionError("the host closed the connection")
        else:
            with self.credit_cv:
                while self.unacked.get(rid, 0) >= WINDOW and not self.closed and rid not in self.cancelled:
                    self.credit_cv.wait()
                if self.closed:
                    raise ConnectionError("the host closed the connection")
        with self.credit_cv:
            if rid in self.cancelled:
                raise Cancelled()
            self.unacked[rid] = self.unacked.get(rid, 0) + n

    def close(self):
        with self.credit_cv:
            self.closed = True
            self.credit_cv.notify_all()


class Worker:
    def __init__(self, app, conn, threads, workers, bodies=None):
        self.app = app
        self.conn = conn
        self.bodies = bodies  # the shared body area (mmap), if any
        self.base = {
            "wsgi.version": (1, 0),
            "wsgi.errors": Errors(),
            "wsgi.multithread": threads > 1,
            "wsgi.multiprocess": workers > 1,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
        }

    def handle(self, kind, rid, payload, out):
        """Run the app for one request (a T_REQUEST or T_MAPPED frame).

        Frames are appended to out; a response that streams (anything but a
        list or tuple) is flushed as it goes and out is emptied first.
        """
        (elen,) = U32.unpack_from(payload, 0)
        environ = marshal.loads(payload[4:4 + elen])
        environ.update(self.base)
        if kind == T_MAPPED:
            offset, length = PLACE.unpack_from(payload, 4 + elen)
            inp = Input(self.bodies, offset, offset + length)
        else:
            inp = Input(payload, 4 + elen, len(payload))
        environ["wsgi.input"] = inp
        conn = self.conn
        req = Response(rid, out, conn)
        verdict = conn.begin(rid)
        if verdict != RUN:
            inp.detach()
            if verdict == CANCELLED:
                conn.finish(rid)
                out.append(HDR.pack(T_END, rid, 0))
            return
        result = None
        try:
            try:
                result = self.app(environ, req.start_response)
                if type(result) in (list, tuple) and not req.streaming:
                    if len(result) == 1 and type(result[0]) is bytes:
                        body = result[0]
                    else:
                        body = b"".join([d if type(d) is bytes else body_bytes(d) for d in result])
                    if req.status is None:
                        raise WSGIError("the app returned without calling start_response")
                    if req.sent:
                        if body:
                            out.append(HDR.pack(T_BODY, rid, len(body)) + body)
                    else:
                        if not req.has_length and may_add_length(environ, req.status, len(body)):
                            req.headers.append(("Content-Length", str(len(body))))
                        head = req.head()
                        if len(body) > 4096:
                            out.append(HDR.pack(T_START, rid, len(head)) + head + HDR.pack(T_BODY, rid, len(body)))
                            out.append(body)
                        elif body:
                            out.append(HDR.pack(T_START, rid, len(head)) + head +
                                       HDR.pack(T_BODY, rid, len(body)) + body)
                        else:
                            out.append(HDR.pack(T_START, rid, len(head)) + head)
                elif type(result) is FileWrapper and not req.streaming and req.status is not None \
                        and self.send_file(req, environ, result):
                    pass
                else:
                    req.flush()
                    for data in result:
                        if type(data) is not bytes:
                            data = body_bytes(data)
                        if not data:
                            continue
                        if req.status is None:
                            raise WSGIError("the app yielded body before calling start_response")
                        if not req.sent:
                            # A first chunk goes out unchecked: a cancel
                            # check costs a system call in inline mode, and
                            # the host drops what a gone client missed.
                            out.append(frame(T_START, rid, req.head()))
                        elif conn.is_cancelled(rid):
                            raise Cancelled()
                        conn.wait_window(rid, len(data))
                        out.append(frame(T_BODY, rid, data))
                        req.flush()
                    if req.status is None:
                        raise WSGIError("the app returned without calling start_response")
                    if not req.sent:
                        out.append(frame(T_START, rid, req.head()))
            finally:
                if result is not None and hasattr(result, "close"):
                    result.close()
        except Cancelled:
            out.append(frame(T_END, rid))
        except BaseException as e:
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            out.append(frame(T_ABORT, rid, format_error(environ).encode("utf-8", "replace")))
        else:
            out.append(HDR.pack(T_END, rid, 0))
        finally:
            inp.detach()
            conn.finish(rid)


    def send_file(self, req, environ, wrapper):
        """Pass a real file to the host (SCM_RIGHTS) with its offset and
        length, so that the host sends it with sendfile. Returns False for a
        file-like that is not a regular file: it is then read in blocks."""
        f = wrapper.filelike
        try:
            fd = f.fileno()
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return False
            offset = f.tell() if hasattr(f, "tell") else os.lseek(fd, 0, os.SEEK_CUR)
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return False
        length = max(st.st_size - offset, 0)
        if not req.has_length and may_add_length(environ, req.status, length):
            req.headers.append(("Content-Length", str(length)))
        out, rid = req.out, req.rid
        out.append(frame(T_START, rid, req.head()))
        if length and environ.get("REQUEST_METHOD") != "HEAD":
            out.append(frame(T_FILE, rid, FILE.pack(offset, length)))
            self.conn.send_fd(b"".join(out), fd)
            out.clear()
        return True


class Response:
    """The state of one response: what start_response and write() see."""

    __slots__ = ("rid", "out", "conn", "status", "headers", "has_length", "sent", "streaming")

    def __init__(self, rid, out, conn):
        self.rid = rid
        self.out = out
        self.conn = conn
        self.status = None
        self.headers = None
        self.has_length = False
        self.sent = False
        self.streaming = False

    def head(self):
        """The FrameStart payload; marks the headers sent."""
        self.sent = True
        key = (self.status, tuple(self.headers))
        head = _heads.get(key)
        if head is None:
            parts = [self.status]
            for name, value in self.headers:
                parts.append(name + ": " + value)
            parts.append("")
            head = "\r\n".join(parts).encode("latin-1")
            remember(_heads, key, head)
        return head

    def flush(self):
        out = self.out
        if out:
            self.conn.send(out)
            out.clear()

    def start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise WSGIError("start_response called a second time without exc_info")
        if type(status) is not str or not STATUS_RE.match(status):
            check_status(status)
        headers = plain_headers(headers)
        self.has_length = check_headers(headers)
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data):
        if self.status is None:
            raise WSGIError("write() called before start_response")
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise WSGIError("write() takes bytes, got %s" % type(data).__name__)
            data = bytes(data)
        out, rid, conn = self.out, self.rid, self.conn
        if not self.sent:
            out.append(frame(T_START, rid, self.head()))
        if conn.is_cancelled(rid):
            raise Cancelled()
        if data:
            conn.wait_window(rid, len(data))
            out.append(frame(T_BODY, rid, data))
        self.flush()
        self.streaming = True


def body_bytes(data):
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise WSGIError("the app's iterable yielded %s, not bytes" % type(data).__name__)


def may_add_length(environ, status, length):
    """Whether a fully known body of length bytes may be given a
    Content-Length. For HEAD, only if the app produced the body anyway (an
    empty one is likely a shortcut, not the GET's length)."""
    if status[:1] == "1" or status[:3] in ("204", "304"):
        return False
    return length > 0 or environ.get("REQUEST_METHOD") != "HEAD"


def check_status(status):
    if type(status) is not str:
        raise WSGIError("status must be a str, got %r" % (status,))
    if not STATUS_RE.match(status):
        raise WSGIError("malformed status %r (want e.g. '200 OK')" % (status,))


# Apps tend to answer with the same few header lists: these remember header
# names found valid (and whether each is Content-Length), whole header lists
# found valid (as tuples, and whether they have a Content-Length), and
# encoded FrameStart payloads. Each is emptied when it reaches CACHE_SIZE
# entries, so one-off values (cookies, lengths) do not crowd out the lists
# that recur. Keys are plain str only (see plain_headers), whose equality
# is the text's.
CACHE_SIZE = 512
_good_names = {}
_good_lists = {}
_heads = {}


def remember(cache, key, value):
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    cache[key] = value


def plain_headers(headers):
    """A new list of the response headers as (str, str) tuples of plain str:
    a str subclass is taken as the text it holds (validation, the caches and
    the encoding then never run its methods). Anything else is a WSGIError."""
    if type(headers) is not list:
        raise WSGIError("response headers must be a list, got %s" % type(headers).__name__)
    for item in headers:
        if type(item) is not tuple or len(item) != 2 or type(item[0]) is not str or type(item[1]) is not str:
            break
    else:
        return list(headers)  # the usual case: nothing to convert
    out = []
    for item in headers:
        if not isinstance(item, tuple) or len(item) != 2:
            raise WSGIError("response header %r is not a (name, value) tuple" % (item,))
        name, value = item
        if not isinstance(name, str):
            raise WSGIError("malformed response header name %r" % (name,))
        if not isinstance(value, str):
            raise WSGIError("malformed value for response header %s: %r" % (name, value))
        out.append((str.__str__(name), str.__str__(value)))
    return out


def check_headers(headers):
    """Validate response headers from plain_headers; return whether
    Content-Length is among them."""
    key = tuple(headers)
    known = _good_lists.get(key)
    if known is not None:
        return known
    has_length = False
    for name, value in headers:
        is_length = _good_names.get(name)
        if is_length is None:
            if not TOKEN_RE.match(name):
                raise WSGIError("malformed response header name %r" % (name,))
            is_length = name.lower() == "content-length"
            remember(_good_names, name, is_length)
        if not (value.isascii() and value.isprintable()) and not VALUE_RE.match(value):
            raise WSGIError("malformed value for response header %s: %r" % (name, value))
        if is_length:
            if has_length:
                raise WSGIError("more than one Content-Length response header")
            if not value.isdigit():
                raise WSGIError("malformed Content-Length %r" % (value,))
            has_length = True
    remember(_good_lists, key, has_length)
    return has_length


def format_error(environ):
    line = "%s %s%s" % (environ.get("REQUEST_METHOD", "?"), environ.get("SCRIPT_NAME", ""),
                        environ.get("PATH_INFO", ""))
    return line + "\n" + traceback.format_exc()


def load_app(module, attr):
    obj = __import__(module, fromlist=["_"])
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError("%s:%s is %s, not a callable" % (module, attr, type(obj).__name__))
    return obj


class FrameReader:
    """Reads whole frames from the socket, many per recv when they are small."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray(READ_SIZE)
        self.view = memoryview(self.buf)
        self.start = 0
        self.end = 0

    def read(self, block=True):
        """Return the complete frames, as (type, id, payload), that the next
        recv brings (waiting for at least one), or None at EOF. With block
        False, return [] at once if nothing has arrived."""
        sock, buf, view = self.sock, self.buf, self.view
        while True:
            if self.start == self.end:
                self.start = self.end = 0
            elif len(buf) - self.end < HDR_SIZE:
                view[:self.end - self.start] = view[self.start:self.end]
                self.end -= self.start
                self.start = 0
            if block:
                n = sock.recv_into(view[self.end:])
            else:
                try:
                    n = sock.recv_into(view[self.end:], 0, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    return []
            if n == 0:
                return None
            self.end += n
            batch = []
            while self.end - self.start >= HDR_SIZE:
                kind, rid, size = HDR.unpack_from(buf, self.start)
                have = self.end - self.start - HDR_SIZE
                if have >= size:
                    p = self.start + HDR_SIZE
                    batch.append((kind, rid, bytes(view[p:p + size])))
                    self.start = p + size
                    continue
                # An incomplete frame: read the rest of a large one directly.
                if size > len(buf) - HDR_SIZE:
                    payload = bytearray(size)
                    pv = memoryview(payload)
                    p = self.start + HDR_SIZE
                    pv[:have] = view[p:self.end]
                    got = have
                    while got < size:
                        m = sock.recv_into(pv[got:], min(size - got, 1 << 20))
                        if m == 0:
                            return None
                        got += m
                    batch.append((kind, rid, payload))
                    self.start = self.end = 0
                break
            if self.start < self.end and self.end == len(buf):
                # Move a partial small frame to the front to make room.
                view[:self.end - self.start] = view[self.start:self.end]
                self.end -= self.start
                self.start = 0
            if batch or not block:
                return batch


def serve_inline(worker, conn, reader):
    """One thread: run requests in arrival order, one send per batch.

    While a request streams, the same thread reads the socket (pump) for
    credits and cancels, keeping new requests for later."""
    out = []
    pending = conn.pending

    def pump(block=True):
        batch = reader.read(block)
        if batch is None:
            return False
        for kind, rid, payload in batch:
            if kind == T_CREDIT:
                conn.credit(rid, U32.unpack_from(payload)[0])
            elif kind == T_CANCEL:
                conn.cancel(rid)
            else:
                pending.append((kind, rid, payload))
        return True

    conn.pump = pump
    while True:
        if not pending and not pump():
            break
        while pending:
            kind, rid, payload = pending.pop(0)
            if kind == T_REQUEST or kind == T_MAPPED:
                # A finished response never waits for the next request: the
                # host must know it ended before the next one starts.
                if out:
                    conn.send(out)
                    out.clear()
                worker.handle(kind, rid, payload, out)
        if out:
            conn.send(out)
            out.clear()


def serve_control(sock, conn):
    """Apply withdraw frames from the control socket until it closes. A
    thread of its own, blocked in recv without the GIL: it costs nothing
    until the host asks, and is heard while the app runs."""
    reader = FrameReader(sock)
    while True:
        try:
            batch = reader.read()
        except OSError:
            return
        if batch is None:
            return
        for kind, rid, _ in batch:
            if kind == T_WITHDRAW:
                try:
                    conn.withdraw(rid)
                except OSError:
                    return


def serve_threaded(worker, conn, reader, threads):
    """A reader thread hands requests to a pool of threads."""
    import queue
    q = queue.SimpleQueue()

    def run():
        out = []
        while True:
            item = q.get()
            if item is None:
                return
            worker.handle(item[0], item[1], item[2], out)
            if out:
                conn.send(out)
                out.clear()

    pool = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    while True:
        batch = reader.read()
        if batch is None:
            break
        for kind, rid, payload in batch:
            if kind == T_REQUEST or kind == T_MAPPED:
                q.put((kind, rid, payload))
            elif kind == T_CREDIT:
                conn.credit(rid, U32.unpack_from(payload)[0])
            elif kind == T_CANCEL:
                conn.cancel(rid)
    conn.close()
    for _ in pool:
        q.put(None)


def as_started_by_c():
    """Hide from the app how the host runs this program, as `python -c`
    would: Python put the file's directory ("/", that of the memfd) first on
    sys.path, where "" goes instead; sys.argv is the program alone; __main__
    has no __file__ (else multiprocessing would run it again in its children,
    where the descriptor is not). Returns the app's name."""
    if not getattr(sys.flags, "safe_path", False):
        sys.path[0] = ""
    app = sys.argv[1] if len(sys.argv) > 1 else ""
    del sys.argv[1:]
    globals().pop("__file__", None)
    return app


def set_title(title):
    """Show title in ps and top (command line and name) if the interpreter
    has setproctitle; without it they show python -u /proc/self/fd/N APP."""
    ours = "SPT_NOENV" not in os.environ
    if ours:
        # Leave /proc/PID/environ alone: the title fits in the command line.
        os.environ["SPT_NOENV"] = "1"
    try:
        from setproctitle import setproctitle
        setproctitle(title)
    except ImportError:
        pass
    except Exception as e:
        print("gowsgi worker: cannot set the process title (%r)" % (e,), file=sys.stderr)
    finally:
        if ours:
            del os.environ["SPT_NOENV"]


def worker_config():
    """The app and process settings the host put in the environment
    (removed from it, so that the app does not see them)."""
    return {
        "module": os.environ.pop("GOWSGI_MODULE"),
        "attr": os.environ.pop("GOWSGI_CALLABLE", "application"),
        "threads": int(os.environ.pop("GOWSGI_THREADS", "1")),
        "workers": int(os.environ.pop("GOWSGI_WORKERS", "1")),
    }


def map_bodies(body_fd, body_size):
    """Map the shared body area read-only (None if it cannot be) and close its fd."""
    try:
        return mmap.mmap(body_fd, body_size, mmap.MAP_SHARED, mmap.PROT_READ)
    except (OSError, ValueError) as e:
        # The ready frame tells the host, which then sends bodies through the socket.
        print("gowsgi worker: cannot map the shared body area (%s); request bodies "
              "come through the socket" % e, file=sys.stderr)
        return None
    finally:
        os.close(body_fd)


def import_app(conn, cfg):
    """Import the app, or tell the host why not and exit."""
    cwd = os.getcwd()
    if sys.path[:1] != [cwd]:
        sys.path.insert(0, cwd)
    try:
        return load_app(cfg["module"], cfg["attr"])
    except BaseException:
        conn.send([frame(T_FAILED, 0, traceback.format_exc().encode("utf-8", "replace"))])
        sys.exit(1)


def exit_on_sigterm():
    # The host stops a worker with SIGTERM once its requests are done:
    # exit through sys.exit so that the app's atexit handlers run.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


def serve(app, conn, ctl_fd, bodies, cfg):
    """Be a worker of app on conn: say ready, then run requests until the
    host closes the socket."""
    threads = cfg["threads"]
    worker = Worker(app, conn, threads, cfg["workers"], bodies)
    ready = str(os.getpid()) + (" bodies" if bodies is not None else "")
    conn.send([frame(T_READY, 0, ready.encode())])
    if ctl_fd is not None:
        ctl = socket.socket(fileno=int(ctl_fd))
        ctl.setblocking(True)
        threading.Thread(target=serve_control, args=(ctl, conn), daemon=True,
                         name="gowsgi-control").start()
    reader = FrameReader(conn.sock)
    try:
        if threads > 1:
            serve_threaded(worker, conn, reader, threads)
        else:
            serve_inline(worker, conn, reader)
    except (ConnectionError, BrokenPipeError):
        pass
    sys.exit(0)


def new_conn(fd):
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    return Conn(sock)


def apply_limits():
    """The umask and resource limits the host asks for, before the app is
    imported (a template's forks inherit them)."""
    mask = os.environ.pop("GOWSGI_UMASK", None)
    if mask is not None:
        os.umask(int(mask))
    import resource
    for var, res in (("GOWSGI_RLIMIT_NOFILE", resource.RLIMIT_NOFILE), ("GOWSGI_RLIMIT_AS", resource.RLIMIT_AS)):
        value = os.environ.pop(var, None)
        if value is not None:
            soft, hard = resource.getrlimit(res)
            n = int(value)
            if hard != resource.RLIM_INFINITY:
                n = min(n, hard)
            resource.setrlimit(res, (n, n))


def main():
    apply_limits()
    name = as_started_by_c()
    if os.environ.pop("GOWSGI_TEMPLATE", None):
        template_main(name)
        return
    set_title("gowsgi-worker " + name)
    fd = int(os.environ.pop("GOWSGI_FD"))
    ctl_fd = os.environ.pop("GOWSGI_CTL_FD", None)
    cfg = worker_config()
    bodies = None
    body_fd = os.environ.pop("GOWSGI_BODY_FD", None)
    body_size = int(os.environ.pop("GOWSGI_BODY_SIZE", "0"))
    if body_fd is not None:
        bodies = map_bodies(int(body_fd), body_size)
    exit_on_sigterm()
    conn = new_conn(fd)
    app = import_app(conn, cfg)
    serve(app, conn, ctl_fd, bodies, cfg)


# The template (preload): it imports the app once, then forks a worker
# for each fork request of the host on its socket.
#
# Host -> template:
#   Q  fork (id: the request's number): uint32 worker number, uint64 size of
#      the shared body area (0: none); the new worker's socket, control
#      socket and body area fd ride along (SCM_RIGHTS)
# Template -> host:
#   H  ready (id 0): "pid"; F failed to import, as a worker
#   T  refused (id 0): threads other than the main one run after the
#      import, so forking is unsafe; payload names them
#   P  forked (id: the request's number): "pid", or "pid pidfd" with a
#      pidfd of the child attached (SCM_RIGHTS), opened before the child
#      can be reaped, for the host to signal it without a pid race
#   Z  reaped (id: a child's pid): int32 wait status
T_FORK, T_FORKED, T_REAPED, T_THREADS = ord("Q"), ord("P"), ord("Z"), ord("T")
FORK = struct.Struct("<IQ")


def other_threads():
    """Names of the threads running besides the main one: those the
    threading module knows, and a count of any others (started in C)."""
    names = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    try:
        tasks = len(os.listdir("/proc/self/task"))
    except OSError:
        tasks = 1
    if tasks - 1 > len(names):
        names.append("%d thread(s) not started by the threading module" % (tasks - 1 - len(names)))
    return names


def template_main(name):
    set_title("gowsgi-worker " + name + " template")
    fd = int(os.environ.pop("GOWSGI_FD"))
    ctl_fd = os.environ.pop("GOWSGI_CTL_FD", None)
    if ctl_fd is not None:
        os.close(int(ctl_fd))
    cfg = worker_config()
    exit_on_sigterm()
    conn = new_conn(fd)
    app = import_app(conn, cfg)
    threads = other_threads()
    if threads:
        conn.send([frame(T_THREADS, 0, ", ".join(threads).encode("utf-8", "replace"))])
        sys.exit(1)
    import ctypes
    import gc
    libc = ctypes.CDLL(None, use_errno=True)
    # What the import left is shared by every fork: keep the collector off
    # those pages (a collection writes to every object it visits).
    gc.collect()
    gc.freeze()
    conn.send([frame(T_READY, 0, str(os.getpid()).encode())])
    serve_forks(conn.sock, name, app, cfg, libc)


def serve_forks(sock, name, app, cfg, libc):
    """Fork a worker for each request of the host; report each child's
    pid and, once reaped, its wait status. Returns only in a child."""
    me = os.getpid()
    sigchld = {signal.SIGCHLD}

    def reap(signum, frm):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            sock.sendall(frame(T_REAPED, pid, struct.pack("<i", status)))

    signal.signal(signal.SIGCHLD, reap)
    want = HDR_SIZE + FORK.size
    while True:
        data, fds = recv_fork(sock, want)
        if data is None:
            sys.exit(0)  # the host closed the socket
        _, rid, _ = HDR.unpack_from(data, 0)
        n, body_size = FORK.unpack_from(data, HDR_SIZE)
        # Not reaped before its pidfd is open: the pid is still the child's.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigchld)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
            sock.close()
            become_worker(name, n, me, app, fds, body_size, cfg, libc)
            os._exit(1)  # not reached: the worker exits through sys.exit
        try:
            for f in fds:
                os.close(f)
            answer_fork(sock, rid, pid)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def answer_fork(sock, rid, pid):
    """Send the child's pid, and its pidfd where the kernel has them."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        sock.sendall(frame(T_FORKED, rid, str(pid).encode()))
        return
    try:
        data = frame(T_FORKED, rid, ("%d pidfd" % pid).encode())
        n = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", pidfd))])
        if n < len(data):
            sock.sendall(data[n:])
    finally:
        os.close(pidfd)


def recv_fork(sock, want):
    """One fork request and its descriptors; (None, []) at EOF."""
    fds = []
    data = b""
    while len(data) < want:
        msg, anc, _, _ = sock.recvmsg(want - len(data), socket.CMSG_SPACE(3 * 4))
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(struct.unpack("%di" % (len(cdata) // 4), cdata[:len(cdata) - len(cdata) % 4]))
        if not msg:
            for f in fds:
                os.close(f)
            return None, []
        data += msg
    return data, fds


def become_worker(name, n, template, app, fds, body_size, cfg, libc):
    """In a forked child: own process group, die with the template, then
    serve as a worker on the sockets that came with the request."""
    os.setpgid(0, 0)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != template:
        os._exit(1)  # the template died before the line above
    set_title("gowsgi-worker %s #%d" % (name, n))
    bodies = None
    if body_size and len(fds) > 2:
        bodies = map_bodies(fds[2], body_size)
    serve(app, new_conn(fds[0]), fds[1], bodies, cfg)


if __name__ == "__main__":
    main()
