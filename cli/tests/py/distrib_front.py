"""A Twisted front: /d/... goes over PB to the publisher at argv[1] (a
Unix socket), as `twisted.web.distrib.ResourceSubscription`."""
import sys
from twisted.internet import reactor
from twisted.web import server, distrib, resource

front = resource.Resource()
front.putChild(b"d", distrib.ResourceSubscription("unix", sys.argv[1]))
p = reactor.listenTCP(0, server.Site(front), interface="127.0.0.1")
print("listening", p.getHost().port, flush=True)
reactor.run()
