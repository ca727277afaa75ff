#!/usr/bin/python3
"""A TCP relay on 127.0.0.1 that adds a fixed latency: bench/run.py's "1 ms" link.

Usage:
  delay_relay.py --target HOST:PORT --delay-ms D [--listen 127.0.0.1:0]
  delay_relay.py --selftest --delay-ms D     (measures the round trip it adds)

What it does, precisely: for every accepted connection it opens one to
--target and moves bytes both ways. In each direction one thread reads
whatever recv() returns (up to 256 KiB), stamps it with the time it arrived,
and queues it; a second thread sends each chunk, in order, no earlier than
its arrival time + D. So every byte is held D ms in each direction, a
request/response round trip costs 2*D more, and chunks are pipelined (a
stream of chunks is delayed by D once, not D per chunk) — like a link with D ms
of one-way latency and no bandwidth limit. TCP_NODELAY is set on both sides.
EOF is forwarded (after the same delay) as a half-close. Python's own cost
(~0.1 ms per hop on a loaded machine) comes on top: --selftest prints it.

Prints "listening on PORT" on stdout once it accepts connections. Stops on
SIGTERM/SIGINT. SIGUSR1 cuts every connection it relays (both sides see the
connection reset), as a network that drops would: bench/faults.py's
connection-cut fault. SIGUSR2 makes every connection it relays now a black
hole instead: both stay open and nothing more crosses them either way, as
with a peer host that went away without a word; connections accepted later
are relayed as usual.
"""

import argparse
import queue
import signal
import socket
import statistics
import sys
import threading
import time

_CHUNK = 256 * 1024

# The sockets of every connection relayed now, for SIGUSR1, and a flag per
# connection, for SIGUSR2.
_live = set()
_live_silenced = set()
_live_lock = threading.Lock()


def silence_all(*_):
    with _live_lock:
        flags = list(_live_silenced)
    for f in flags:
        f.set()


def cut_all(*_):
    with _live_lock:
        socks = list(_live)
    for s in socks:
        try:
            # RST rather than FIN: the peer sees a broken connection.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         b'\x01\x00\x00\x00\x00\x00\x00\x00')
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _pump_in(src, q):
    try:
        while True:
            data = src.recv(_CHUNK)
            q.put((time.monotonic(), data))
            if not data:
                return
    except OSError:
        q.put((time.monotonic(), b''))


def _pump_out(dst, q, delay, silenced):
    try:
        while True:
            arrived, data = q.get()
            wait = arrived + delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if silenced.is_set():
                continue  # dropped, EOF included: the socket stays open
            if not data:
                dst.shutdown(socket.SHUT_WR)
                return
            dst.sendall(data)
    except OSError:
        pass


def _relay(client, target, delay):
    try:
        upstream = socket.create_connection(target)
    except OSError:
        client.close()
        return
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    silenced = threading.Event()
    with _live_lock:
        _live.update((client, upstream))
        _live_silenced.add(silenced)
    threads = []
    for src, dst in ((client, upstream), (upstream, client)):
        q = queue.SimpleQueue()
        threads.append(threading.Thread(target=_pump_in, args=(src, q), daemon=True))
        threads.append(threading.Thread(target=_pump_out,
                                        args=(dst, q, delay, silenced),
                                        daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with _live_lock:
        _live.difference_update((client, upstream))
        _live_silenced.discard(silenced)
    client.close()
    upstream.close()


def serve(listen_sock, target, delay):
    while True:
        client, _ = listen_sock.accept()
        threading.Thread(target=_relay, args=(client, target, delay), daemon=True).start()


def _parse(hostport):
    host, _, port = hostport.rpartition(':')
    return host or '127.0.0.1', int(port)


def _listen(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr)
    s.listen(64)
    return s


def selftest(delay_ms, rounds=300):
    """Median round trip of 1-byte ping-pongs, direct and through relays."""
    echo = _listen(('127.0.0.1', 0))

    def echo_serve():
        while True:
            c, _ = echo.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def loop(c=c):
                while True:
                    d = c.recv(64)
                    if not d:
                        return
                    c.sendall(d)
            threading.Thread(target=loop, daemon=True).start()
    threading.Thread(target=echo_serve, daemon=True).start()
    target = echo.getsockname()

    def rtt(port):
        c = socket.create_connection(('127.0.0.1', port))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        samples = []
        for _ in range(rounds):
            t = time.perf_counter()
            c.sendall(b'x')
            c.recv(64)
            samples.append(time.perf_counter() - t)
        c.close()
        return statistics.median(samples) * 1e3

    result = {'direct': rtt(target[1])}
    for label, d in (('relay_0ms', 0.0), ('relay', delay_ms / 1e3)):
        ls = _listen(('127.0.0.1', 0))
        threading.Thread(target=serve, args=(ls, target, d), daemon=True).start()
        result[label] = rtt(ls.getsockname()[1])
    return result


def _tight_timers():
    # Default timer slack (50 us) makes each sleep overshoot; new threads
    # inherit the caller's slack, so set it once before starting any.
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK, 1 us
    except (OSError, AttributeError):
        pass


def main():
    _tight_timers()
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--listen', default='127.0.0.1:0')
    ap.add_argument('--target')
    ap.add_argument('--delay-ms', type=float, required=True,
                    help='one-way delay added in each direction')
    ap.add_argument('--selftest', action='store_true')
    args = ap.parse_args()
    if args.selftest:
        r = selftest(args.delay_ms)
        print(' '.join('%s=%.3fms' % kv for kv in r.items()))
        return
    if not args.target:
        ap.error('--target is required')
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGUSR1, cut_all)
    signal.signal(signal.SIGUSR2, silence_all)
    ls = _listen(_parse(args.listen))
    print('listening on %d' % ls.getsockname()[1], flush=True)
    try:
        serve(ls, _parse(args.target), args.delay_ms / 1e3)
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
