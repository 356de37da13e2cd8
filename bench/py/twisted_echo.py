"""Twisted's echo server on its epoll reactor, for braid's compare harness.

Prints "listening PORT" once it accepts connections.
"""
import sys

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import protocol, reactor  # noqa: E402


class Echo(protocol.Protocol):
    def connectionMade(self):
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data):
        self.transport.write(data)


port = reactor.listenTCP(int(sys.argv[1]) if len(sys.argv) > 1 else 0,
                         protocol.Factory.forProtocol(Echo), backlog=4096,
                         interface="127.0.0.1")
print(f"listening {port.getHost().port}", flush=True)
reactor.run()
