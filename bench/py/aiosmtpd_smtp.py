"""aiosmtpd for the SMTP comparison: a handler that writes each message to
DIR/<user>/tmp and renames it into new/ (fsynced unless --no-fsync), as
its docs write a handler. Prints "listening PORT"."""
import asyncio, os, sys, time, itertools
from aiosmtpd.smtp import SMTP

root = sys.argv[sys.argv.index("--maildir") + 1]
fsync = "--no-fsync" not in sys.argv
counter = itertools.count()

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local, _, domain = address.rpartition("@")
        if domain != "localhost" or not local.startswith("bench"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        name = "%d.%d_%d.bench" % (time.time(), os.getpid(), next(counter))
        for rcpt in envelope.rcpt_tos:
            d = os.path.join(root, rcpt.rpartition("@")[0])
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            tmp = os.path.join(d, "tmp", name)
            with open(tmp, "wb") as f:
                f.write(envelope.original_content)
                f.flush()
                if fsync:
                    os.fsync(f.fileno())
            os.rename(tmp, os.path.join(d, "new", name))
            if fsync:
                fd = os.open(os.path.join(d, "new"), os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
        return "250 OK"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Handler()), "127.0.0.1", 0)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
