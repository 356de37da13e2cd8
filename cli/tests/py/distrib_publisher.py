"""A Twisted publisher (`twisted.web.distrib.ResourcePublisher`) on the
Unix socket argv[1]: /echo tells what it received as JSON, /fail raises,
/code answers 418, /files serves the directory argv[2]."""
import sys, json
from twisted.internet import reactor
from twisted.spread import pb
from twisted.web import server, distrib, resource, static

class Echo(resource.Resource):
    isLeaf = True
    def render(self, request):
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"x-publisher", b"twisted")
        request.addCookie(b"sid", b"abc", path=b"/", httpOnly=True)
        body = request.content.read()
        return json.dumps({
            "method": request.method.decode(),
            "uri": request.uri.decode(),
            "path": request.path.decode(),
            "prepath": [p.decode() for p in request.prepath],
            "postpath": [p.decode() for p in request.postpath],
            "args": {k.decode(): [x.decode() for x in v] for k, v in request.args.items()},
            "host": request.getRequestHostname().decode(),
            "x_test": (request.getHeader(b"x-test") or b"").decode(),
            "client": request.getClientAddress().host,
            "body_len": len(body),
            "body_head": body[:32].decode("latin-1"),
        }).encode()

class Fails(resource.Resource):
    isLeaf = True
    def render(self, request):
        raise RuntimeError("the publisher's resource failed")

class Code(resource.Resource):
    isLeaf = True
    def render(self, request):
        request.setResponseCode(418)
        return b"teapot"

root = resource.Resource()
root.putChild(b"echo", Echo())
root.putChild(b"fail", Fails())
root.putChild(b"code", Code())
root.putChild(b"files", static.File(sys.argv[2]))
site = server.Site(root)
reactor.listenUNIX(sys.argv[1], pb.PBServerFactory(distrib.ResourcePublisher(site)))
print("listening", sys.argv[1], flush=True)
reactor.run()
