"""A Twisted PB client that exercises a PB server's surface (braid's
pb_server example): echo of every basic type, add with keywords, an error,
subscribe with a callback, good and bad logins, anonymous login.
Prints one line per check; exits 1 if any failed.

    python pb_client.py PORT USER PASSWORD
"""
import sys

from twisted.cred.credentials import Anonymous, UsernamePassword
from twisted.internet import defer, reactor
from twisted.spread import pb

PORT, USER, PASSWORD = int(sys.argv[1]), sys.argv[2], sys.argv[3]
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok " if ok else "FAILED ") + name + ": " + repr(detail), flush=True)


class Callback(pb.Referenceable):
    def __init__(self):
        self.called = defer.Deferred()

    def remote_notify(self, msg):
        if not self.called.called:
            self.called.callback(msg)
        return "ack"


def connect():
    factory = pb.PBClientFactory()
    reactor.connectTCP("127.0.0.1", PORT, factory)
    return factory


@defer.inlineCallbacks
def main():
    factory = connect()
    root = yield factory.getRootObject()
    shared = [1]
    values = [
        ("int", 42), ("negative", -300), ("2**40", 2 ** 40), ("2**70", 2 ** 70),
        ("-2**70", -(2 ** 70)), ("float", 1.5), ("bytes", b"raw\x00bytes"),
        ("str", "h\u00e9llo w\u00f6rld"), ("None", None), ("True", True), ("False", False),
        ("list", [1, "two", None]), ("tuple", (1, 2)), ("dict", {"k": [1], "n": None}),
        ("set", {7}), ("frozenset", frozenset([8])), ("vocabulary word", b"copy"),
        ("nested", [[[1], (2,)], {"a": {"b": "c"}}]),
    ]
    for name, v in values:
        got = yield root.callRemote("echo", v)
        check("echo " + name, got == v and type(got) is type(v), got)
    got = yield root.callRemote("echo", [shared, shared])
    check("echo shared reference", got == [[1], [1]] and got[0] is got[1], got)
    got = yield root.callRemote("add", 2, b=3)
    check("add(2, b=3)", got == 5, got)
    got = yield root.callRemote("add", a=1.5, b=2)
    check("add(a=1.5, b=2)", got == 3.5, got)
    try:
        yield root.callRemote("fail")
        check("fail raises", False, "no error")
    except pb.RemoteError as e:
        # A CopiedFailure, raised under inlineCallbacks as RemoteError.
        check("fail raises ValueError", e.remoteType.endswith(b"ValueError")
              and str(e) == "intentional failure", (e.remoteType, str(e)))
    try:
        yield root.callRemote("no_such_method")
        check("unknown method", False, "no error")
    except Exception as e:
        check("unknown method fails", True, repr(e)[:80])
    cb = Callback()
    yield root.callRemote("subscribe", cb)
    msg = yield cb.called
    check("subscribe: the server called notify", msg == "msg", msg)

    # Logins, each on its own connection as PBClientFactory.login does.
    f = connect()
    avatar = yield f.login(UsernamePassword(USER.encode(), PASSWORD.encode()), client=None)
    who = yield avatar.callRemote("whoami")
    check("login", who == USER, who)
    f.disconnect()
    f = connect()
    try:
        yield f.login(UsernamePassword(USER.encode(), b"wrong"), client=None)
        check("bad login refused", False, "accepted")
    except pb.RemoteError as e:
        check("bad login refused", e.remoteType == b"twisted.cred.error.UnauthorizedLogin", e.remoteType)
    f.disconnect()
    f = connect()
    avatar = yield f.login(Anonymous(), client=None)
    who = yield avatar.callRemote("whoami")
    check("anonymous login", who == "anonymous", who)
    f.disconnect()
    factory.disconnect()


def done(result):
    if isinstance(result, Exception) or hasattr(result, "getTraceback"):
        print("FAILED error: " + (result.getTraceback() if hasattr(result, "getTraceback") else repr(result)), flush=True)
        results.append(False)
    reactor.stop()


d = main()
d.addBoth(done)
reactor.callLater(30, lambda: (print("FAILED timeout", flush=True), results.append(False), reactor.stop()))
reactor.run()
print("%d of %d checks passed" % (sum(results), len(results)), flush=True)
sys.exit(0 if results and all(results) else 1)
