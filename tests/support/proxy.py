"""A TCP proxy between a client and a real server that can drop connections on cue: after N
bytes from the server (mid-fetch), or all at once (a server restart, a NAT timeout)."""

from __future__ import annotations

import socket
import threading

from .dovecot import free_port


class Proxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.cut_after: int | None = None       # server->client bytes per connection before a drop
        self.connections = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self.connections += 1
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, self.cut_after), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while chunk := src.recv(65536):
                if limit is not None and sent + len(chunk) > limit:
                    dst.sendall(chunk[: max(limit - sent, 0)])
                    break
                dst.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        for s in (src, dst):
            _close(s)

    def drop_all(self) -> None:
        with self._lock:
            for s in self._sockets:
                _close(s)
            self._sockets.clear()

    def close(self) -> None:
        self.drop_all()
        _close(self._listener)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
