"""paramiko (PyPI) against braid's SSH server: a password login, a key
login, exec with stdout/stderr/exit status, 1 MiB through stdin, SFTP
put and get, a wrong password refused. Prints one line per check."""
import hashlib
import sys

import paramiko

port, known_hosts, keyfile = sys.argv[1], sys.argv[2], sys.argv[3]


def client(**kw):
    c = paramiko.SSHClient()
    c.load_host_keys(known_hosts)
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    c.connect("127.0.0.1", int(port), username="alice", allow_agent=False,
              look_for_keys=False, timeout=20, **kw)
    return c


c = client(password="wonderland")
_, out, err = c.exec_command("echo hi; echo err >&2; exit 4")
print("password", out.read().decode().strip(), err.read().decode().strip(),
      out.channel.recv_exit_status())
c.close()

c = client(key_filename=keyfile)
data = bytes(range(256)) * 4096
stdin, out, _ = c.exec_command("sha256sum")
stdin.write(data)
stdin.channel.shutdown_write()
digest = out.read().decode().split()[0]
print("stdin", digest == hashlib.sha256(data).hexdigest(), out.channel.recv_exit_status())
sftp = c.open_sftp()
with sftp.open("/p.bin", "wb") as f:
    f.write(data)
with sftp.open("/p.bin", "rb") as f:
    back = f.read()
print("sftp", back == data, sftp.stat("/p.bin").st_size, sorted(sftp.listdir("/")))
sftp.close()
c.close()

try:
    client(password="wrong")
    print("wrong accepted")
except paramiko.AuthenticationException:
    print("wrong refused")
