"""Python's http.client against a braid web server (tests/web_clients.rs).

Usage: http_client.py PORT. Prints one JSON object with what it saw.
"""
import http.client
import json
import sys

port = int(sys.argv[1])
out = {}
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)

conn.request("GET", "/files/a.txt")
r = conn.getresponse()
out["get"] = [r.status, r.read().decode(), r.getheader("Content-Type")]
etag = r.getheader("ETag")

conn.request("GET", "/files/a.txt", headers={"Range": "bytes=3-5"})
r = conn.getresponse()
out["range"] = [r.status, r.read().decode(), r.getheader("Content-Range")]

conn.request("GET", "/files/a.txt", headers={"If-None-Match": etag})
r = conn.getresponse()
out["conditional"] = [r.status, r.read().decode()]

# A chunked upload from a generator, on the same kept-alive connection.
conn.request("POST", "/count", body=(bytes([i % 256]) * 1000 for i in range(500)),
             encode_chunked=True)
r = conn.getresponse()
out["chunked"] = [r.status, r.read().decode()]

conn.request("POST", "/count", body=b"x" * 12345)
r = conn.getresponse()
out["sized"] = [r.status, r.read().decode()]

conn.request("GET", "/missing")
r = conn.getresponse()
out["missing"] = [r.status, len(r.read()) > 0]

conn.request("HEAD", "/files/a.txt")
r = conn.getresponse()
out["head"] = [r.status, r.getheader("Content-Length"), r.read().decode()]

conn.close()
print(json.dumps(out))
