"""Calls the same PB methods on two servers (braid's pb_server example and
the same object written in Python, pb_server.py) and checks that they
answer alike: Python's `+` on every kind of value PB carries (results of
the same type and value, or the same remote error type and message), and
`subscribe`'s answer. Prints one line per case; exits 1 on a difference.

    python pb_add_compare.py BRAID_PORT PYTHON_PORT
"""
import sys

from twisted.internet import defer, reactor
from twisted.spread import pb

PORTS = int(sys.argv[1]), int(sys.argv[2])
CASES = [
    (2, 3), (-7, 7), (2 ** 62, 2 ** 62), (2 ** 63 - 1, 1), (-(2 ** 63), -1),
    (2 ** 70, 1), (2 ** 70, -(2 ** 70)), (-(2 ** 100), 2 ** 99), (10 ** 40, 10 ** 40),
    (True, 1), (True, True), (1.5, 2), (2, 0.25), (True, 1.5), (1e308, 1e308),
    (2 ** 70, 0.5), ("ab", "cd"), ("", "x"), (b"ab", b"\x00"), ([1, "a"], [None]),
    ((1,), (2, 3)), ([], []), (1, "a"), ("a", 1), ([1], (2,)), ((1,), [2]),
    (b"x", "y"), ("y", b"x"), (None, 1), (1, None), ({"k": 1}, {"j": 2}), (1.5, "s"),
    ([1], "s"), (b"x", 1),
]


class Callback(pb.Referenceable):
    def remote_notify(self, msg):
        return "ack"


@defer.inlineCallbacks
def outcome(root, method, *args):
    try:
        got = yield root.callRemote(method, *args)
        defer.returnValue(("value", type(got).__name__, got))
    except pb.RemoteError as e:
        defer.returnValue(("error", e.remoteType, str(e)))
    except Exception as e:
        defer.returnValue(("error", type(e).__name__, str(e)))


@defer.inlineCallbacks
def main():
    roots = []
    for port in PORTS:
        factory = pb.PBClientFactory()
        reactor.connectTCP("127.0.0.1", port, factory)
        roots.append((yield factory.getRootObject()))
    bad = 0
    for a, b in CASES:
        braid = yield outcome(roots[0], "add", a, b)
        python = yield outcome(roots[1], "add", a, b)
        same = braid == python
        bad += not same
        print(("ok " if same else "DIFFERENT ") + "add(%r, %r): braid %r, python %r" % (a, b, braid, python), flush=True)
    braid = yield outcome(roots[0], "subscribe", Callback())
    python = yield outcome(roots[1], "subscribe", Callback())
    bad += braid != python
    print(("ok " if braid == python else "DIFFERENT ") + "subscribe: braid %r, python %r" % (braid, python), flush=True)
    print("%d cases, %d different" % (len(CASES) + 1, bad), flush=True)
    reactor.stop()
    sys.exitcode = 1 if bad else 0


sys.exitcode = 1
reactor.callWhenRunning(lambda: main().addErrback(lambda f: (f.printTraceback(), reactor.stop())))
reactor.run()
sys.exit(sys.exitcode)
