#!/usr/bin/env python3
"""The fault suite: each scenario breaks the running lab in one way while the verifying
client (tests/verify-client.py) writes through the floating address, then heals it and
waits until both controllers are back (one active, one standby), then checks the data.

usage: lab/faults.py [--runs N] [--scenarios a,b,...] [--list] [--results FILE]

Needs the lab up (`make lab-up`, or lab/lab.sh up; out/lab/lab.env) and root. Ends with
one line:

  faults: S scenarios, R runs, acked writes lost L, dual-active D, max client gap G s

Dual-active counts the moments at which both controllers reported their own group
Active/Optimized for the same LUN (REPORT TARGET PORT GROUPS through each portal,
polled every 0.1 s). The per-run details go to --results as JSON lines.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from libiscsi import RTPG_CDB, RTPG_LENGTH, XFER_READ, IscsiError  # noqa: E402
from libiscsi import command_once, connect, destroy, rtpg_groups  # noqa: E402

OUT = os.environ.get("LAB_OUT", os.path.join(ROOT, "out", "lab"))
LUN = 1  # data1: the client's LUN; RTPG is the same for every LUN of the array


def env():
    values = {}
    with open(os.path.join(OUT, "lab.env")) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, v = line.strip().split("=", 1)
                values[k] = v
    return values


E = {}


def log(msg):
    print(f"faults: {msg}", file=sys.stderr, flush=True)


def console(node):
    try:
        with open(os.path.join(OUT, f"{node}.log"), "rb") as f:
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def role(node):
    """The node's role as its heartbeat last logged it since its last boot."""
    text = console(node)
    boot = text.rfind("STAR init")
    if boot < 0:
        return None
    text = text[boot:]
    last, at = "starting", -1
    for m in re.finditer(r"role \w+ → (\w+)", text):
        last, at = m.group(1), m.start()
    return "fenced" if text.rfind("SELF-FENCING") > at else last


def active_node():
    roles = {n: role(n) for n in ("ctl1", "ctl2")}
    act = [n for n, r in roles.items() if r == "active"]
    return act[0] if len(act) == 1 else None, roles


def other(node):
    return "ctl2" if node == "ctl1" else "ctl1"


def pid(node):
    with open(os.path.join(OUT, f"{node}.pid")) as f:
        return int(f.read().strip())


def netns(*cmd, check=True):
    return subprocess.run(["ip", "netns", "exec", E["LAB_NETNS"], *cmd], check=check)


def ipn(*args):
    subprocess.run(["ip", "-n", E["LAB_NETNS"], *args], check=True)


def nft(*args, check=True):
    return subprocess.run(
        ["ip", "netns", "exec", E["LAB_NETNS"], "nft", *args],
        check=check,
        capture_output=True,
    )


def wait(what, cond, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {limit} s waiting for {what}")


def boot(node):
    subprocess.run([os.path.join(ROOT, "lab", "lab.sh"), "boot", node], check=True)


def healthy(limit=300):
    """Both controllers up, one active and one standby (redundancy back)."""

    def ok():
        a, roles = active_node()
        return a is not None and roles[other(a)] == "standby"

    wait("one active and one standby", ok, limit)
    return active_node()[0]


class DualActiveMonitor(threading.Thread):
    """Polls REPORT TARGET PORT GROUPS through both portals; counts the rounds in which
    controller 1 said group 1 is Active/Optimized and controller 2 said group 2 is."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.moments = 0
        self.ctx = {1: None, 2: None}

    def claims_active(self, n):
        url = f"iscsi://{E['CHAP_USER']}%{E['CHAP_SECRET']}@{E[f'PORTAL{n}']}/{E['TARGET_IQN']}/{LUN}"
        try:
            if self.ctx[n] is None:
                self.ctx[n] = connect(url, E["INITIATOR_IQN"], 1)
            c, lun = self.ctx[n]
            for _ in range(3):
                r, data = command_once(c, lun, RTPG_CDB, XFER_READ, RTPG_LENGTH)
                if r["sense_key"] != 6:
                    break
            if not r["ok"]:
                return False
            return any(g["id"] == n and g["state"] == 0 for g in rtpg_groups(data))
        except IscsiError:
            if self.ctx[n] is not None:
                destroy(self.ctx[n][0])
                self.ctx[n] = None
            return False

    def run(self):
        while not self.stop.is_set():
            if self.claims_active(1) and self.claims_active(2):
                self.moments += 1
            time.sleep(0.1)
        for n in (1, 2):
            if self.ctx[n] is not None:
                destroy(self.ctx[n][0])


# Each scenario: break(active) -> what to wait for; heal. `a` is the active controller.


def kill_active(a):
    os.kill(pid(a), signal.SIGKILL)
    wait(f"{other(a)} active", lambda: role(other(a)) == "active", 120)
    boot(a)


def kill_standby(a):
    os.kill(pid(other(a)), signal.SIGKILL)
    time.sleep(5)
    assert role(a) == "active", f"{a} is {role(a)} after its standby died"
    boot(other(a))


def pause_active(a):
    p = pid(a)
    os.kill(p, signal.SIGSTOP)
    try:
        wait(f"{other(a)} active", lambda: role(other(a)) == "active", 120)
        time.sleep(2)
    finally:
        os.kill(p, signal.SIGCONT)
    # It must notice it is late, fence, reset and come back as standby.
    wait(f"{a} reset", lambda: console(a).count("STAR init") >= 2 or role(a) == "fenced", 120)


def cut(a_to_b, b_to_a, a):
    """Drops every frame between the controllers' interconnect ports, per direction, in
    the lab's bridge (nftables' bridge family); the witness stays reachable."""
    b = other(a)
    nft("add", "table", "bridge", "faults")
    nft("add", "chain", "bridge", "faults", "forward",
        "{ type filter hook forward priority 0; }")
    if a_to_b:
        nft("add", "rule", "bridge", "faults", "forward",
            "iifname", f"{a}-i", "oifname", f"{b}-i", "drop")
    if b_to_a:
        nft("add", "rule", "bridge", "faults", "forward",
            "iifname", f"{b}-i", "oifname", f"{a}-i", "drop")


def uncut():
    nft("delete", "table", "bridge", "faults", check=False)


def cut_interconnect(a):
    cut(True, True, a)
    try:
        time.sleep(8)
    finally:
        uncut()


def cut_interconnect_one_way(a):
    cut(True, False, a)
    try:
        time.sleep(8)
    finally:
        uncut()


def cut_client_network(a):
    ipn("link", "set", f"{a}-c", "down")
    time.sleep(8)
    ipn("link", "set", f"{a}-c", "up")


def witness_down_then_kill_active(a):
    os.kill(pid("witness"), signal.SIGKILL)
    time.sleep(3)
    kill_active(a)
    boot("witness")


def reboot_standby(a):
    monitor(other(a), "system_reset")
    wait(f"{other(a)} rebooting", lambda: console(other(a)).count("STAR init") >= 2, 60)


def monitor(node, command):
    subprocess.run(
        ["socat", "-", f"UNIX-CONNECT:{OUT}/{node}.monitor"],
        input=command.encode() + b"\n",
        capture_output=True,
        check=True,
    )


def stall_disk_of_active(a):
    # One request a second (QEMU's throttling of the shared disk for this controller
    # only): its heartbeat writes, ten a second, fall behind at once.
    monitor(a, "block_set_io_throttle shared 0 0 0 1 0 0")
    try:
        wait(f"{other(a)} active", lambda: role(other(a)) == "active", 120)
        wait(f"{a} reset", lambda: console(a).count("STAR init") >= 2, 120)
    finally:
        # The throttle outlives the guest's reset: lift it so that the node can rejoin.
        monitor(a, "block_set_io_throttle shared 0 0 0 0 0 0")


def fail_disk_of_active(a):
    # The shared disk's backend taken away under the running guest: every request of
    # this controller fails with EIO from here on.
    monitor(a, "drive_del shared")
    wait(f"{other(a)} active", lambda: role(other(a)) == "active", 120)
    wait(f"{a} reset", lambda: console(a).count("STAR init") >= 2, 120)
    # Its QEMU has no shared disk any more: a fresh start gives it back.
    os.kill(pid(a), signal.SIGKILL)
    time.sleep(1)
    boot(a)


def both_start_at_once(a):
    for n in ("ctl1", "ctl2"):
        os.kill(pid(n), signal.SIGKILL)
    time.sleep(1)
    # QEMU daemonizes at once: both boot together.
    for n in ("ctl1", "ctl2"):
        boot(n)


def shell(node, command, expect, limit=60):
    """Logs in on the node's serial console as an operator would (the lab's admin
    password), types `command`, waits for `expect` after it, and logs out."""
    import socket as sk

    s = sk.socket(sk.AF_UNIX, sk.SOCK_STREAM)
    s.connect(os.path.join(OUT, f"{node}.console"))

    def drain():
        # What the console prints comes back on this socket too; unread, it would hold
        # QEMU's serial port back. The log file is where it is read.
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass

    threading.Thread(target=drain, daemon=True).start()

    def after(mark):
        return console(node)[mark:]

    def step(send, want, mark):
        s.sendall(send.encode() + b"\r")
        wait(f"{want!r} on {node}'s console", lambda: want in after(mark), limit)
        return mark + after(mark).index(want) + len(want)

    def prompt(mark):
        # The line editor reads ahead and drops what it read with the line it returns:
        # type only at a fresh prompt.
        wait(f"the prompt on {node}'s console", lambda: "> " in after(mark), limit)
        return mark + after(mark).index("> ") + 2

    try:
        mark = len(console(node))
        mark = step("", "login: ", mark)
        mark = step(E.get("ADMIN_USER", "admin"), "Password: ", mark)
        mark = step(E.get("ADMIN_PASSWORD", "star"), "`help` lists the commands", mark)
        mark = step(command, expect, prompt(mark))
        step("logout", "logged out", prompt(mark))
    finally:
        s.close()


def switchover_and_back(a):
    # The planned way, typed at the active's console: no fencing wait, and the standby
    # takes over as soon as the active has handed over on disk. Then back again.
    b = other(a)
    shell(a, "switchover", "Switchover: active → ")
    wait(f"{b} active", lambda: role(b) == "active", 60)
    wait(f"{a} standby", lambda: role(a) == "standby", 60)
    time.sleep(3)
    shell(b, "switchover", "Switchover: active → ")
    wait(f"{a} active again", lambda: role(a) == "active", 60)
    wait(f"{b} standby again", lambda: role(b) == "standby", 60)


SCENARIOS = {
    "kill-active": kill_active,
    "kill-standby": kill_standby,
    "pause-active": pause_active,
    "cut-interconnect": cut_interconnect,
    "cut-interconnect-one-way": cut_interconnect_one_way,
    "cut-client-network": cut_client_network,
    "witness-down-then-kill-active": witness_down_then_kill_active,
    "reboot-standby": reboot_standby,
    "stall-disk-of-active": stall_disk_of_active,
    "fail-disk-of-active": fail_disk_of_active,
    "both-start-at-once": both_start_at_once,
    "switchover-and-back": switchover_and_back,
}


def run_one(name):
    a = healthy()
    stop_file = os.path.join(OUT, "client.stop")
    if os.path.exists(stop_file):
        os.remove(stop_file)
    url = f"iscsi://{E['CHAP_USER']}%{E['CHAP_SECRET']}@{E['VIP']}/{E['TARGET_IQN']}/{LUN}"
    client = subprocess.Popen(
        ["ip", "netns", "exec", E["LAB_NETNS"], "python3",
         os.path.join(ROOT, "tests", "verify-client.py"),
         "--url", url, "--initiator", E["INITIATOR_IQN"], "--stop-file", stop_file],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    monitor = DualActiveMonitor()
    monitor.start()
    error = None
    # The array's own failover time, as the survivor's console shows it (polled every
    # 0.1 s): from the fault to its "role promoting → active".
    took = {}

    def watch_takeover(since):
        while "s" not in took and not monitor.stop.is_set():
            if role(other(a)) == "active":
                took["s"] = round(time.monotonic() - since, 2)
            time.sleep(0.1)

    try:
        time.sleep(3)
        log(f"{name}: {a} active; breaking")
        threading.Thread(target=watch_takeover, args=(time.monotonic(),), daemon=True).start()
        SCENARIOS[name](a)
        healthy()
        time.sleep(3)
    except Exception as e:  # the run counts as failed, with why
        error = str(e)
    with open(stop_file, "w"):
        pass
    out, err = client.communicate(timeout=300)
    monitor.stop.set()
    monitor.join()
    try:
        result = json.loads(out.decode().strip().splitlines()[-1])
    except (IndexError, ValueError):
        result = {"lost": None, "error": err.decode()[-500:]}
    result.update(
        scenario=name, dual_active=monitor.moments, failover_s=took.get("s"), error=error
    )
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--results", default=os.path.join(OUT, "faults.jsonl"))
    p.add_argument("--list", action="store_true")
    a = p.parse_args()
    if a.list:
        print("\n".join(SCENARIOS))
        return 0
    names = [n for n in a.scenarios.split(",") if n]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"faults: unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    E.update(env())
    runs, lost, dual, gap, failed = 0, 0, 0, 0.0, []
    with open(a.results, "a") as results:
        for name in names:
            for i in range(a.runs):
                r = run_one(name)
                runs += 1
                results.write(json.dumps(r) + "\n")
                results.flush()
                log(f"{name} run {i + 1}: {json.dumps(r)}")
                if r.get("lost") is None or r.get("error") or r.get("unverified") or r.get("corrupt"):
                    failed.append(f"{name}#{i + 1}")
                lost += r.get("lost") or 0
                dual += r["dual_active"]
                gap = max(gap, r.get("max_gap_s") or 0.0)
    print(
        f"faults: {len(names)} scenarios, {runs} runs, acked writes lost {lost}, "
        f"dual-active {dual}, max client gap {gap:.1f} s"
        + (f" (runs that did not complete: {', '.join(failed)})" if failed else "")
    )
    return 0 if lost == 0 and dual == 0 and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
