"""An upstream that records every byte it receives, in the test's own process, so a test
can assert exactly what torii forwarded (or that it forwarded nothing). Each connection
gets one `200 ok` answer per request head it completes, then Connection: close.

    rec = RecordingBackend().start();  rec.port;  rec.data();  rec.clear();  rec.stop()
"""

import socket
import threading
import time

HOST = "127.0.0.1"


class RecordingBackend:
    def __init__(self, port):
        self.port = port
        self._lock = threading.Lock()
        self._received = []  # bytes per connection, in accept order
        self._stop = threading.Event()
        self._sock = None
        self._thread = None

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, self.port))
        s.listen(64)
        s.settimeout(0.2)
        self._sock = s
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._received.append(b"")
                index = len(self._received) - 1
            threading.Thread(target=self._serve, args=(c, index), daemon=True).start()

    def _serve(self, c, index):
        c.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                got = c.recv(65536)
                if not got:
                    break
                data += got
                with self._lock:
                    self._received[index] += got
            if b"\r\n\r\n" in data:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        except OSError:
            pass
        finally:
            c.close()

    def data(self):
        """Everything received so far, all connections joined."""
        with self._lock:
            return b"".join(self._received)

    def clear(self):
        with self._lock:
            self._received = []

    def settle(self, seconds=0.3):
        """Waits a moment so bytes torii might still forward have arrived."""
        time.sleep(seconds)
        return self.data()

    def stop(self):
        self._stop.set()
        if self._sock:
            self._sock.close()
        if self._thread:
            self._thread.join(timeout=2)
