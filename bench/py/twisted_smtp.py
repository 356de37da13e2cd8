"""Twisted's ESMTP server for the SMTP comparison, as its docs write one:
an IMessageDelivery accepting bench*@localhost, each message written line
by line to DIR/<user>/tmp and renamed into new/ (fsynced unless
--no-fsync). Prints "listening PORT"."""
import os, sys, time, itertools
from zope.interface import implementer
from twisted.internet import epollreactor
epollreactor.install()
from twisted.internet import reactor, defer
from twisted.mail import smtp

root = sys.argv[sys.argv.index("--maildir") + 1]
fsync = "--no-fsync" not in sys.argv
counter = itertools.count()

@implementer(smtp.IMessage)
class MaildirMessage:
    # One per recipient (Twisted asks each recipient for its IMessage).
    def __init__(self, users):
        self.name = "%d.%d_%d.bench" % (time.time(), os.getpid(), next(counter))
        self.files = []
        for u in users:
            d = os.path.join(root, u)
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            self.files.append((d, open(os.path.join(d, "tmp", self.name), "wb")))
    def lineReceived(self, line):
        for _, f in self.files:
            f.write(line + b"\r\n")
    def eomReceived(self):
        for d, f in self.files:
            f.flush()
            if fsync:
                os.fsync(f.fileno())
            f.close()
            os.rename(os.path.join(d, "tmp", self.name), os.path.join(d, "new", self.name))
            if fsync:
                fd = os.open(os.path.join(d, "new"), os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
        return defer.succeed(self.name)
    def connectionLost(self):
        for d, f in self.files:
            f.close()
            try:
                os.remove(os.path.join(d, "tmp", self.name))
            except OSError:
                pass

@implementer(smtp.IMessageDelivery)
class Delivery:
    def receivedHeader(self, helo, origin, recipients):
        return ("Received: from %s by bench (Twisted)" % (helo[0].decode(),)).encode()
    def validateFrom(self, helo, origin):
        return origin
    def validateTo(self, user):
        if user.dest.domain == b"localhost" and user.dest.local.startswith(b"bench"):
            name = user.dest.local.decode()
            return lambda: MaildirMessage([name])
        raise smtp.SMTPBadRcpt(user)

class Factory(smtp.SMTPFactory):
    protocol = smtp.ESMTP
    def buildProtocol(self, addr):
        p = smtp.SMTPFactory.buildProtocol(self, addr)
        p.delivery = Delivery()
        return p

port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
print("listening", port.getHost().port, flush=True)
reactor.run()
