"""Twisted's names as an authoritative server for the DNS comparison:
BindAuthority over the zone file, on UDP, as its docs set one up.
Usage: twisted_dns.py ZONEFILE PORT; prints "listening PORT"."""
import sys
from twisted.internet import epollreactor
epollreactor.install()
from twisted.internet import reactor
from twisted.names import authority, dns, server

zonefile, port = sys.argv[1], int(sys.argv[2])
auth = authority.BindAuthority(zonefile.encode() if not isinstance(zonefile, bytes) else zonefile)
factory = server.DNSServerFactory(authorities=[auth])
protocol = dns.DNSDatagramProtocol(factory)
reactor.listenUDP(port, protocol, interface="127.0.0.1")
print("listening", port, flush=True)
reactor.run()
