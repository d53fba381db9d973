#!/usr/bin/env python3
"""The EC2 instance metadata service, IMDSv2 only, as far as STAR uses it.

QEMU's user-mode network runs this once per guest connection to 169.254.169.254:80
(`guestfwd=...-cmd:`), with the connection on stdin and stdout. Like an instance
registered with `--imds-support v2.0`, it answers a GET only with a token obtained by
a PUT first; without one it says 401.

usage: imds-responder.py LOG USER_DATA_FILE|-
  LOG             every request is appended here as "METHOD PATH token=yes|no"
  USER_DATA_FILE  served as /latest/user-data; "-" means the instance has none (404)
"""

import sys

TOKEN = "AQAEAStarTestToken=="


def respond(out, status, reason, body=b""):
    out.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
        "Content-Type: text/plain\r\nConnection: keep-alive\r\n\r\n".encode()
    )
    out.write(body)
    out.flush()


def main():
    log_path, user_data = sys.argv[1], sys.argv[2]
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        request = inp.readline()
        if not request:
            return
        method, path, _ = request.decode().split(" ", 2)
        headers = {}
        while True:
            line = inp.readline().decode()
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length:
            inp.read(length)
        has_token = headers.get("x-aws-ec2-metadata-token") == TOKEN
        with open(log_path, "a") as log:
            log.write(f"{method} {path} token={'yes' if has_token else 'no'}\n")
        if method == "PUT" and path == "/latest/api/token":
            if "x-aws-ec2-metadata-token-ttl-seconds" not in headers:
                respond(out, 400, "Bad Request")
            else:
                respond(out, 200, "OK", TOKEN.encode())
        elif method == "GET" and not has_token:
            respond(out, 401, "Unauthorized")
        elif method == "GET" and path == "/latest/user-data":
            if user_data == "-":
                respond(out, 404, "Not Found")
            else:
                with open(user_data, "rb") as f:
                    respond(out, 200, "OK", f.read())
        else:
            respond(out, 404, "Not Found")


if __name__ == "__main__":
    main()
