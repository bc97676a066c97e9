"""An HTTP proxy that fails a share of the requests to an object store.

It forwards every request to a local GCS emulator and answers every
`period`-th one itself with 503 Service Unavailable (deterministically, so a
test holds for every seed), the transient error a real bucket gives every
day. `period = 1` fails them all: a store that is down.
"""

import http.client
import http.server
import itertools
import json
import threading

_ERROR = json.dumps({'error': {'code': 503, 'message': 'Blinking store: '
                               'try again'}}).encode()
# Hop-by-hop headers the proxy answers for itself.
_HOP_HEADERS = ('connection', 'keep-alive', 'transfer-encoding')


class BlinkingStore(http.server.ThreadingHTTPServer):
  """A proxy on 127.0.0.1 (`endpoint`) in front of `target` ('host:port').

  Attributes:
    period: every period-th request fails with 503 (0: none).
    failed: how many requests it failed.
  """

  daemon_threads = True

  def __init__(self, target: str, period: int):
    super().__init__(('127.0.0.1', 0), _Handler)
    self.target = target
    self.period = period
    self.failed = 0
    self._count = itertools.count(1)
    self._lock = threading.Lock()
    self._thread = threading.Thread(target=self.serve_forever, daemon=True)

  @property
  def endpoint(self) -> str:
    return f'http://127.0.0.1:{self.server_address[1]}'

  def fails_next(self) -> bool:
    """Whether the request now arriving gets a 503."""
    with self._lock:
      fail = self.period > 0 and next(self._count) % self.period == 0
      self.failed += fail
      return fail

  def __enter__(self) -> 'BlinkingStore':
    self._thread.start()
    return self

  def __exit__(self, *exc_info) -> None:
    self.shutdown()
    self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
  protocol_version = 'HTTP/1.1'

  def _relay(self) -> None:
    length = int(self.headers.get('Content-Length') or 0)
    body = self.rfile.read(length) if length else None
    if self.server.fails_next():
      self._answer(503, {'Content-Type': 'application/json'}, _ERROR)
      return
    connection = http.client.HTTPConnection(self.server.target, timeout=60)
    headers = {name: value for name, value in self.headers.items()
               if name.lower() not in _HOP_HEADERS + ('expect',)}
    connection.request(self.command, self.path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    self._answer(response.status, {
        name: value for name, value in response.getheaders()
        if name.lower() not in _HOP_HEADERS + ('content-length',)}, data)

  def _answer(self, status: int, headers: dict[str, str], data: bytes):
    self.send_response(status)
    for name, value in headers.items():
      self.send_header(name, value)
    self.send_header('Content-Length', str(len(data)))
    self.end_headers()
    if self.command != 'HEAD':
      self.wfile.write(data)

  do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _relay

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    del format, args  # Quiet.
