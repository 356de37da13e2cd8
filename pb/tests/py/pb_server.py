"""A Twisted PB server with the surface of braid's pb_server example: one
root serves echo/add/fail/subscribe and Twisted's login over a portal.
Prints "listening PORT".

    python pb_server.py USER PASSWORD
"""
import sys

from twisted.cred import checkers, portal
from twisted.internet import reactor
from twisted.spread import pb
from zope.interface import implementer

USER, PASSWORD = sys.argv[1], sys.argv[2]


class Avatar(pb.Avatar):
    def __init__(self, name):
        self.name = name

    def perspective_whoami(self):
        return self.name


@implementer(portal.IRealm)
class Realm:
    def requestAvatar(self, avatarId, mind, *interfaces):
        name = "anonymous" if avatarId is checkers.ANONYMOUS else avatarId.decode()
        return pb.IPerspective, Avatar(name), lambda: None


class Root(pb._PortalWrapper):
    def remote_echo(self, x):
        return x

    def remote_add(self, a, b):
        return a + b

    def remote_fail(self):
        raise ValueError("intentional failure")

    def remote_subscribe(self, ref):
        def notify():
            ref.callRemote("notify", "msg").addBoth(lambda r: print("notify answered", repr(r), flush=True))
        reactor.callLater(0.05, notify)
        return "subscribed"


@implementer(pb.IPBRoot)
class RootFactory:
    def __init__(self, portal):
        self.portal = portal

    def rootObject(self, broker):
        return Root(self.portal, broker)


users = checkers.InMemoryUsernamePasswordDatabaseDontUse(**{USER: PASSWORD.encode()})
p = portal.Portal(Realm(), [users, checkers.AllowAnonymousAccess()])
port = reactor.listenTCP(0, pb.PBServerFactory(RootFactory(p)), interface="127.0.0.1")
print("listening %d" % port.getHost().port, flush=True)
reactor.run()
