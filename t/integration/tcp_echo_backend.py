#!/usr/bin/python3
"""A TCP backend for the tcp server tests, started like backend.py (--port, --name, --mode):
prints "ready" once it listens, exits 3 when the port is taken.

Modes:
  echo   every byte back; the client's FIN is answered, once everything is echoed, with
         "<name> saw eof\n" half a second later and then a FIN: the direction toward the
         client must keep flowing after the client shut its write side (half-close)
  hello  "<name>\n" on accept, then as echo (which target a connection reached)

One thread per connection; stdlib only.
"""

import argparse
import socket
import sys
import threading
import time


def serve(conn, name, mode):
    with conn:
        try:
            if mode == "hello":
                conn.sendall(name.encode() + b"\n")
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    break
                conn.sendall(data)
            time.sleep(0.5)
            conn.sendall(name.encode() + b" saw eof\n")
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(5)
            while conn.recv(65536):  # wait for the peer's close
                pass
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="tcp")
    ap.add_argument("--mode", default="echo", choices=["echo", "hello", "normal"])
    args = ap.parse_args()
    mode = "echo" if args.mode == "normal" else args.mode
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        ls.bind(("127.0.0.1", args.port))
    except OSError:
        sys.exit(3)
    ls.listen(128)
    print("ready", flush=True)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(conn, args.name, mode), daemon=True).start()


if __name__ == "__main__":
    main()
