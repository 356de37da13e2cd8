"""Twisted Web's hello world on its epoll reactor, for braid's HTTP bench.

Prints "listening PORT" once it accepts connections.
"""
import sys

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import reactor  # noqa: E402
from twisted.web import resource, server  # noqa: E402


class Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"Hello, world!\n"


site = server.Site(Hello())
site.noisy = False
site.log = lambda request: None  # no access log, as the Rust servers
port = reactor.listenTCP(int(sys.argv[1]) if len(sys.argv) > 1 else 0, site,
                         backlog=4096, interface="127.0.0.1")
print(f"listening {port.getHost().port}", flush=True)
reactor.run()
