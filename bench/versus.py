#!/usr/bin/env python3
"""STAR against the traditional stack, side by side, in one run.

The reference is the appliance our users build by hand today (bench/reference/build.sh:
Debian with systemd, targetcli-fb restoring the same LUN and ACLs at boot, corosync and
pacemaker). Both boot the same kernel package under the same QEMU (TCG, 1 vCPU, 512 MiB,
a virtio-rng) with the same shared disk, made by `star disk init`, and export the same partition
(star-lun-data1, 32 MiB). For each, RUNS boots, the two systems taking turns, and in
each boot:

  boot to serving   the guest's uptime when the LUN first answered INQUIRY through the
                    portal: the host starts an iscsi-inq every 0.1 s (each runs on its
                    own; an early one can hang on the not-yet-listening guest), then
                    reads the guest's uptime on the serial console and takes off the time
                    since the answer
  memory            MemTotal - MemAvailable, read on the console 20 s after serving
  throughput, IOPS  qemu-img bench through the portal (libiscsi in QEMU's block layer):
                    128 KiB and 4 KiB requests, 16 in flight, read and write
  ceiling           (the reference's guest, which has a shell and dd) the same request
                    sizes and depth straight to the partition, from inside the VM: what
                    the emulated disk gives with no iSCSI in between, for both, since the
                    virtual hardware is the same

and once per system, libiscsi's conformance suite (iscsi-test-cu --dataloss -t ALL).
Failover: STAR's client gap after kill -9 of the active, from the lab's fault suite
(lab/faults.py, scenario kill-active); the reference's, from two reference VMs running
their pacemaker cluster in a network namespace, when --reference-failover is given and
the cluster runs (see bench/reference/README.md).

Each figure is the median of the runs, with the minimum and maximum. Writes
bench/results/<date>.json and bench/RESULTS.md.

usage: bench/versus.py [--runs N] [--bench-count N] [--failover-runs N] [--no-failover]
                       [--reference-failover] [--report JSON]
Needs root (network namespaces for the failover), `make static`, qemu-system-x86,
qemu-block-extra, libiscsi-bin; `make bench` installs them.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINS = os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/release")
CONFIG = "tests/configs/target-ctl.star.toml"
INITIATOR = "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test"
INITIATOR2 = "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2"
STAR_IQN = "iqn.2026-11.org.star-array:star-test"
REF_IQN = "iqn.2003-01.org.linux-iscsi.reference:data1"
STAR_ADMIN = ("admin", "startest-admin")  # tests/configs/target-ctl.star.toml
LUN_PARTITION = "/dev/disk/by-partlabel/star-lun-data1"
SETTLE = 20.0  # seconds after serving before memory is read


def say(*a):
    print("versus:", *a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values),
            "values": values}


class Console:
    """A VM's serial console on a Unix socket. Everything it sends is read at once, so
    QEMU is never held back by an unread socket, and kept for searching."""

    def __init__(self, path):
        for _ in range(100):
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"no console socket {path}")
        self.text = ""
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                data = self.s.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.text += data.decode(errors="replace").replace("\r", "")

    def mark(self):
        with self.lock:
            return len(self.text)

    def since(self, mark):
        with self.lock:
            return self.text[mark:]

    def send(self, line):
        self.s.sendall(line.encode() + b"\r")

    def wait(self, needle, mark, limit=120):
        end = time.time() + limit
        while time.time() < end:
            t = self.since(mark)
            if needle in t:
                return mark + t.index(needle) + len(needle)
            time.sleep(0.05)
        raise RuntimeError(f"no {needle!r} on the console within {limit} s; last:\n{self.since(mark)[-800:]}")

    def close(self):
        self.s.close()


class Vm:
    def __init__(self, name, work, kernel, initrd, cmdline, root_drive, shared, port):
        self.sock = os.path.join(work, f"{name}.sock")
        self.log = os.path.join(work, f"{name}.log")
        self.started = time.time()
        self.proc = subprocess.Popen(
            ["qemu-system-x86_64", "-name", name, "-machine", "q35", "-m", "512", "-smp", "1",
             "-accel", "tcg", "-display", "none", "-no-reboot", "-monitor", "none",
             "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
             "-drive", f"file={root_drive},format=raw,if=virtio,snapshot=on",
             "-drive", f"file={shared},format=raw,if=none,id=shared,cache=none,aio=threads,file.locking=off",
             "-device", "virtio-blk-pci,drive=shared,share-rw=on,serial=shared0001",
             "-nic", f"user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{port}-:3260",
             # Its own subnet: on eth0's, the first lease would own the route (see
             # tests/src/array.rs).
             "-nic", "user,model=virtio-net-pci,net=10.0.3.0/24",
             # Entropy from the host, as the qemu board expects (virtio_rng): neither
             # system then waits for the kernel's random number generator.
             "-device", "virtio-rng-pci",
             "-chardev", f"socket,id=console,path={self.sock},server=on,wait=off,logfile={self.log}",
             "-serial", "chardev:console"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.console = Console(self.sock)

    def stop(self):
        self.console.close()
        self.proc.kill()
        self.proc.wait()


def wait_inquiry(url, vm, limit=600):
    """Host time when INQUIRY first answers through the portal.

    A new probe starts every 0.1 s without waiting for the ones before it: a probe sent
    before the guest's network is up is accepted by QEMU's user network on the host side
    and then hangs until its timeout, and waiting for it would add up to that timeout to
    the figure (it did: up to 5 s)."""
    end = time.time() + limit
    probes = []
    try:
        while time.time() < end:
            if not probes or time.time() - probes[-1][0] >= 0.1:
                probes.append((time.time(), subprocess.Popen(
                    ["timeout", "10", "iscsi-inq", "-i", INITIATOR, url],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
            for _, probe in probes:
                if probe.poll() == 0:
                    return time.time()
            probes = [(t, probe) for t, probe in probes if probe.returncode is None]
            if vm.proc.poll() is not None:
                raise RuntimeError(f"the VM exited before serving; console:\n{open(vm.log).read()[-2000:]}")
            time.sleep(0.02)
        raise RuntimeError(f"no INQUIRY answer from {url} within {limit} s")
    finally:
        for _, probe in probes:
            if probe.poll() is None:
                probe.kill()
                probe.wait()


def star_probe(c, password=STAR_ADMIN[1]):
    """Logs in on STAR's console `c` and reads `--json status`: (uptime_sec, mem_used_kib)."""
    m = c.mark()
    c.send("")
    m = c.wait("login: ", m)
    c.send(STAR_ADMIN[0])
    m = c.wait("Password: ", m)
    c.send(password)
    m = c.wait("`help` lists the commands", m)
    m = c.wait("> ", m)
    c.send("--json status")
    m2 = c.wait('"mem_used_kib"', m)
    m2 = c.wait("\n", m2)
    text = c.since(m)
    uptime = float(re.search(r'"uptime_sec":\s*([0-9.]+)', text).group(1))
    used = int(re.search(r'"mem_used_kib":\s*([0-9]+)', text).group(1))
    m = c.wait("> ", m2)
    c.send("logout")
    c.wait("logged out", m)
    return uptime, used


def ref_shell(vm, command, limit=120):
    """Runs a command in the reference's root shell on its console (it logs root in)."""
    c = vm.console
    m = c.mark()
    for _ in range(60):
        c.send("")
        try:
            m = c.wait("# ", m, 2)
            break
        except RuntimeError:
            pass
    else:
        raise RuntimeError("no root prompt on the reference's console")
    # The markers are split in the typed line, so only the output joins them.
    c.send(f"echo '=='BEGIN; {command}; echo '=='END")
    m = c.wait("==BEGIN\n", m, 10)
    end = c.wait("==END", m, limit)
    return c.since(m)[: end - m - len("==END")]


def ref_probe(vm):
    # Labelled, since the console also carries the kernel's and systemd's messages.
    out = ref_shell(vm, "echo uptime=$(cat /proc/uptime); cat /proc/meminfo")
    uptime = float(re.search(r"uptime=([\d.]+)", out).group(1))
    total = int(re.search(r"MemTotal:\s+(\d+)", out).group(1))
    avail = int(re.search(r"MemAvailable:\s+(\d+)", out).group(1))
    return uptime, total - avail


def ref_ceiling(vm):
    """The partition straight from inside the reference's guest, with dd and O_DIRECT,
    one request at a time: the emulated disk with no iSCSI and no network in between.
    The guest has no tool that keeps 16 in flight, and 16 dd processes at once measure
    process start-up under TCG more than the disk."""
    figures = {}
    for name, bs, size, count in (("read_128k", "128k", 131072, 256), ("write_128k", "128k", 131072, 256),
                                  ("read_4k", "4k", 4096, 4096), ("write_4k", "4k", 4096, 4096)):
        io = (f"if={LUN_PARTITION} of=/dev/null iflag=direct" if name.startswith("read")
              else f"if=/dev/zero of={LUN_PARTITION} oflag=direct conv=notrunc")
        out = ref_shell(vm, f"s=$(date +%s%N); dd {io} bs={bs} count={count} 2>/dev/null; "
                        "e=$(date +%s%N); echo NANOS $((e - s))", 300)
        secs = int(re.search(r"NANOS (\d+)", out).group(1)) / 1e9
        figures[name] = {"mib_s": count * size / 1048576 / secs, "iops": count / secs}
    return figures


def kernel_baseline(kernel, initrd_dir, work, runs):
    """Memory in use with the same kernel and nothing else: busybox as init reads
    /proc/meminfo after the same settling time. What each system uses above this is its
    own."""
    root = os.path.join(work, "baseline")
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    shutil.copy(os.path.join(initrd_dir, "bin/busybox"), os.path.join(root, "bin/busybox"))
    with open(os.path.join(root, "init"), "w") as f:
        f.write("#!/bin/busybox sh\n/bin/busybox mkdir -p /proc\n/bin/busybox mount -t proc proc /proc\n"
                f"/bin/busybox sleep {int(SETTLE)}\n/bin/busybox cat /proc/meminfo\n"
                "/bin/busybox echo BASELINE-END\n/bin/busybox poweroff -f\n")
    os.chmod(os.path.join(root, "init"), 0o755)
    cpio = os.path.join(work, "baseline.cpio")
    subprocess.run(f"cd {root} && printf 'init\\nbin\\nbin/busybox\\n' | cpio -o -H newc --quiet > {cpio}",
                   shell=True, check=True)
    used = []
    for _ in range(runs):
        out = subprocess.run(["qemu-system-x86_64", "-machine", "q35", "-m", "512", "-smp", "1", "-accel", "tcg",
                              "-display", "none", "-no-reboot", "-monitor", "none", "-serial", "stdio",
                              "-kernel", kernel, "-initrd", cpio, "-append", "console=ttyS0 panic=-1"],
                             capture_output=True, text=True, timeout=300).stdout
        total = int(re.search(r"MemTotal:\s+(\d+)", out).group(1))
        avail = int(re.search(r"MemAvailable:\s+(\d+)", out).group(1))
        used.append((total - avail) / 1024)
    return spread(used)


def portal_bench(port, iqn, lun, count):
    """qemu-img bench through the portal: MiB/s and IOPS for each request size and way."""
    opts = (f"driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=127.0.0.1:{port},"
            f"file.target={iqn},file.lun={lun},file.initiator-name={INITIATOR}")
    figures = {}
    for name, size, n in (("read_128k", 131072, count // 4), ("write_128k", 131072, count // 4),
                          ("read_4k", 4096, count), ("write_4k", 4096, count)):
        cmd = ["qemu-img", "bench", "--image-opts", opts, "-t", "none", "-n", "-d", "16",
               "-s", str(size), "-c", str(n)]
        if name.startswith("write"):
            cmd.append("-w")
        out = run(cmd)
        secs = float(re.search(r"Run completed in ([0-9.]+) seconds", out).group(1))
        figures[name] = {"mib_s": n * size / 1048576 / secs, "iops": n / secs}
    return figures


def conformance(url):
    r = subprocess.run(["iscsi-test-cu", "--dataloss", "-t", "ALL", "-i", INITIATOR, "-I", INITIATOR2, url],
                       capture_output=True, text=True)
    m = re.search(r"^\s+tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", r.stdout, re.M)
    if not m:
        raise RuntimeError(f"iscsi-test-cu printed no summary:\n{r.stdout[-1500:]}{r.stderr[-500:]}")
    return {"tests": int(m.group(2)), "passed": int(m.group(3)), "failed": int(m.group(4))}


def shared_disk(work):
    path = os.path.join(work, "shared.raw")
    if os.path.exists(path):
        os.unlink(path)
    with open(path, "wb") as f:
        f.truncate(256 << 20)
    run([f"{BINS}/star", "disk", "init", "--disk", path, "--config", CONFIG], cwd=ROOT)
    run([f"{BINS}/star", "target", "promote", "--disk", path, "--node", "1"], cwd=ROOT)
    return path


def sizes(paths):
    apparent = sum(os.stat(p).st_size for p in paths)
    allocated = sum(os.stat(p).st_blocks * 512 for p in paths)
    compressed = 0
    for p in paths:
        out = subprocess.run(f"zstd -3 -c -q {p} | wc -c", shell=True, capture_output=True, text=True, check=True)
        compressed += int(out.stdout.strip())
    return {"apparent_bytes": apparent, "allocated_bytes": allocated, "zstd_bytes": compressed}


def measure_boot(system, args, work, boot, run_index):
    """One boot of one system: its figures, and the conformance count on the first boot."""
    shared = shared_disk(work)
    port = free_port()
    vm = boot(port, shared)
    try:
        lun = 1 if system == "star" else 0
        iqn = STAR_IQN if system == "star" else REF_IQN
        url = f"iscsi://127.0.0.1:{port}/{iqn}/{lun}"
        answered = wait_inquiry(url, vm)
        uptime, _ = star_probe(vm.console) if system == "star" else ref_probe(vm)
        serving = uptime - (time.time() - answered)
        # Roughly: the probe's own time after its uptime reading is not taken off.
        time.sleep(max(0.0, SETTLE - (time.time() - answered)))
        _, used_kib = star_probe(vm.console) if system == "star" else ref_probe(vm)
        figures = {"boot_to_serving_s": serving, "memory_mib": used_kib / 1024,
                   "portal": portal_bench(port, iqn, lun, args.bench_count)}
        if system == "reference":
            figures["ceiling"] = ref_ceiling(vm)
        if run_index == 0:
            figures["conformance"] = conformance(url)
        say(f"{system} run {run_index + 1}: serving at {serving:.2f} s, memory {used_kib / 1024:.1f} MiB, "
            f"{json.dumps(figures['portal'])}")
        return figures
    finally:
        vm.stop()


def measure(args, work, boots):
    """RUNS boots of each system, alternating between them so that a slow drift of the
    host (its speed wanders by ±10 % over minutes here) falls on both alike rather than on
    whichever system ran second. Returns each system's figures: medians and spreads."""
    runs = {system: [] for system in boots}
    for i in range(args.runs):
        for system, boot in boots.items():
            runs[system].append(measure_boot(system, args, work, boot, i))
    result = {}
    for system, figures in runs.items():
        out = {k: spread([f[k] for f in figures]) for k in ("boot_to_serving_s", "memory_mib")}
        out["portal"] = {k: {m: spread([f["portal"][k][m] for f in figures]) for m in ("mib_s", "iops")}
                         for k in figures[0]["portal"]}
        if "ceiling" in figures[0]:
            out["ceiling_in_guest"] = {k: {m: spread([f["ceiling"][k][m] for f in figures])
                                           for m in ("mib_s", "iops")}
                                       for k in figures[0]["ceiling"]}
        out["conformance"] = figures[0]["conformance"]
        result[system] = out
    return result


def star_failover(runs, work):
    """The lab's kill-active scenario under the verifying client, RUNS times, in a lab
    of its own (out/lab-versus, namespace star-lab-versus) beside any other."""
    env = dict(os.environ, LAB_OUT=os.path.join(ROOT, "out/lab-versus"), LAB_NETNS="star-lab-versus")
    results = os.path.join(work, "faults.jsonl")
    subprocess.run(["lab/lab.sh", "up"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    memory = {}
    try:
        # Both controllers' memory as the array runs: every service up, one active.
        for node in ("ctl1", "ctl2"):
            console = Console(os.path.join(env["LAB_OUT"], f"{node}.console"))
            try:
                memory[node] = star_probe(console, password="star")[1] / 1024  # lab/lab.sh's admin
            finally:
                console.close()
        r = subprocess.run(["lab/faults.py", "--runs", str(runs), "--scenarios", "kill-active",
                            "--results", results], cwd=ROOT, env=env, capture_output=True, text=True)
    finally:
        subprocess.run(["lab/lab.sh", "down"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in open(results)] if os.path.exists(results) else []
    gaps = [row["max_gap_s"] for row in rows if row.get("max_gap_s") is not None]
    if r.returncode != 0 or len(gaps) != runs:
        raise RuntimeError(f"the fault suite failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return {"client_gap_s": spread(gaps), "lost": sum(row.get("lost") or 0 for row in rows),
            "memory_mib_per_controller": memory,
            "summary": r.stdout.strip().splitlines()[-1]}


def reference_failover(runs):
    """The reference's two-node pacemaker cluster, RUNS times: bench/reference/failover.sh
    boots it, runs the verifying client through its floating address, kills the node
    holding it and prints the client's JSON line with the node's memory."""
    r = subprocess.run(["bench/reference/failover.sh", str(runs)], cwd=ROOT, capture_output=True, text=True)
    rows = []
    for line in r.stdout.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    if r.returncode != 0 or not rows:
        return {"error": (r.stdout + r.stderr)[-1500:]}
    memory = [m for row in rows for m in (row.get("memory_mib") or {}).values() if m is not None]
    return {"client_gap_s": spread([row["max_gap_s"] for row in rows]),
            "lost": sum(row.get("lost") or 0 for row in rows),
            "vip_back_s": spread([row["vip_back_s"] for row in rows]),
            "cluster_boot_to_serving_s": spread([row.get("boot_to_serving_s") for row in rows]),
            "memory_mib_per_node": spread(memory)}


def ratio(a, b):
    return None if not a or not b else a / b


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--bench-count", type=int, default=4096, help="4 KiB requests per figure (128 KiB: a quarter)")
    p.add_argument("--failover-runs", type=int, help="kills of the active per system (default: --runs)")
    p.add_argument("--no-failover", action="store_true")
    p.add_argument("--reference-failover", action="store_true")
    p.add_argument("--results", default=os.path.join(ROOT, "bench/results"))
    p.add_argument("--report", metavar="JSON", help="only write bench/RESULTS.md again from a results file")
    args = p.parse_args()
    os.chdir(ROOT)
    if args.report:
        result = json.load(open(args.report))
        write_report(result, args.report)
        return
    for tool in ("qemu-system-x86_64", "qemu-img", "iscsi-inq", "iscsi-test-cu", "zstd"):
        if not shutil.which(tool):
            sys.exit(f"versus: {tool} is missing (make bench installs what it needs)")
    work = tempfile.mkdtemp(prefix="star-versus.")
    try:
        say("building STAR's qemu image and the reference appliance")
        image = os.path.join(work, "image")
        run([f"{BINS}/star-image", "build", "--board", "qemu", "--bin-dir", BINS, "--cache", ".cache",
             "--out", image, "--config", CONFIG])
        ref = os.path.join(ROOT, "out/reference")
        subprocess.run(["bench/reference/build.sh", ref], check=True, stdout=subprocess.DEVNULL)
        boot_dir = os.path.join(image, "boot")
        star_cmdline = open(os.path.join(boot_dir, "cmdline")).read().strip() + " star.mask=heartbeat"
        ref_cmdline = open(os.path.join(ref, "cmdline")).read().strip() + " reference.mode=single"

        def boot_star(port, shared):
            return Vm("star", work, f"{boot_dir}/vmlinuz", f"{boot_dir}/initrd.img", star_cmdline,
                      os.path.join(image, "star-qemu.raw"), shared, port)

        def boot_ref(port, shared):
            return Vm("reference", work, f"{ref}/vmlinuz", f"{ref}/initrd.img", ref_cmdline,
                      os.path.join(ref, "root.raw"), shared, port)

        result = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "host": f"{os.cpu_count()} cores; " + run(["qemu-system-x86_64", "--version"]).splitlines()[0]
            + "; TCG, 1 vCPU, 512 MiB per VM",
            "kernel": run(["file", "-b", f"{boot_dir}/vmlinuz"]).split("version ")[1].split()[0],
            "runs": args.runs,
        }
        unpacked = os.path.join(work, "initrd")
        os.makedirs(unpacked)
        subprocess.run(f"gzip -dc {boot_dir}/initrd.img | (cd {unpacked} && cpio -id --quiet bin/busybox)",
                       shell=True, check=True)
        result["kernel_alone_memory_mib"] = kernel_baseline(f"{boot_dir}/vmlinuz", unpacked, work, args.runs)
        result.update(measure(args, work, {"star": boot_star, "reference": boot_ref}))
        result["star"]["image"] = sizes([os.path.join(image, "star-qemu.raw")])
        result["reference"]["image"] = sizes([f"{ref}/root.raw", f"{ref}/vmlinuz", f"{ref}/initrd.img"])
        if not args.no_failover:
            result["star"]["failover"] = star_failover(args.failover_runs or args.runs, work)
        if args.reference_failover:
            result["reference"]["failover"] = reference_failover(args.failover_runs or args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    os.makedirs(args.results, exist_ok=True)
    path = os.path.join(args.results, result["date"][:10] + ".json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    write_report(result, path)


def write_report(result, json_path):
    with open(os.path.join(ROOT, "bench/RESULTS.md"), "w") as f:
        f.write(results_md(result, os.path.relpath(os.path.abspath(json_path), os.path.join(ROOT, "bench"))))
    print(open(os.path.join(ROOT, "bench/RESULTS.md")).read())


def results_md(r, json_path):
    s, ref = r["star"], r["reference"]

    def med(x):
        return x["median"] if x else None

    def cell(x, fmt):
        if not x:
            return "-"
        if x["min"] == x["max"]:
            return fmt.format(x["median"])
        return f"{fmt.format(x['median'])} ({fmt.format(x['min'])}–{fmt.format(x['max'])})"

    def rat(a, b, fmt="{:.2f}"):
        q = ratio(a, b)
        return "-" if q is None else fmt.format(q)

    base = med(r.get("kernel_alone_memory_mib"))

    def above(x):
        return None if not x or base is None else {k: v - base for k, v in x.items() if k in ("median", "min", "max")}

    def paired(a, b, fmt="{:.2f}"):
        """The ratio of the medians, and the median of the per-boot ratios: run i of STAR
        against run i of the reference, which booted right after it."""
        q = rat(med(a), med(b), fmt)
        if not a or not b or len(a.get("values", [])) != len(b.get("values", [])) or not a.get("values"):
            return q
        each = [x / y for x, y in zip(a["values"], b["values"]) if y]
        return (f"{q}; paired {fmt.format(statistics.median(each))} "
                f"({fmt.format(min(each))}–{fmt.format(max(each))})")

    rows = [
        ("boot to serving, s (guest uptime)", cell(s["boot_to_serving_s"], "{:.2f}"),
         cell(ref["boot_to_serving_s"], "{:.2f}"), rat(med(s["boot_to_serving_s"]), med(ref["boot_to_serving_s"]))),
        ("memory in use once serving, MiB", cell(s["memory_mib"], "{:.1f}"), cell(ref["memory_mib"], "{:.1f}"),
         rat(med(s["memory_mib"]), med(ref["memory_mib"]))),
        (f"  of which above the kernel alone ({cell(r.get('kernel_alone_memory_mib'), '{:.1f}')} MiB)",
         cell(above(s["memory_mib"]), "{:.1f}"), cell(above(ref["memory_mib"]), "{:.1f}"),
         rat(med(above(s["memory_mib"])), med(above(ref["memory_mib"])))),
        ("image, MiB allocated (zstd -3)",
         f"{s['image']['allocated_bytes'] / 1048576:.1f} ({s['image']['zstd_bytes'] / 1048576:.1f})",
         f"{ref['image']['allocated_bytes'] / 1048576:.1f} ({ref['image']['zstd_bytes'] / 1048576:.1f})",
         rat(s["image"]["allocated_bytes"], ref["image"]["allocated_bytes"])),
        ("iscsi-test-cu passed", f"{s['conformance']['passed']} of {s['conformance']['tests']}",
         f"{ref['conformance']['passed']} of {ref['conformance']['tests']}",
         rat(s["conformance"]["passed"], ref["conformance"]["passed"])),
    ]
    for k, label in (("read_128k", "read 128 KiB, MiB/s"), ("write_128k", "write 128 KiB, MiB/s"),
                     ("read_4k", "read 4 KiB, IOPS"), ("write_4k", "write 4 KiB, IOPS")):
        m = "mib_s" if "128k" in k else "iops"
        fmt = "{:.1f}" if m == "mib_s" else "{:.0f}"
        rows.append((f"{label}, through the portal, 16 in flight", cell(s["portal"][k][m], fmt),
                     cell(ref["portal"][k][m], fmt), paired(s["portal"][k][m], ref["portal"][k][m])))
    for k, label in (("read_128k", "read 128 KiB, MiB/s"), ("write_128k", "write 128 KiB, MiB/s"),
                     ("read_4k", "read 4 KiB, IOPS"), ("write_4k", "write 4 KiB, IOPS")):
        m = "mib_s" if "128k" in k else "iops"
        fmt = "{:.1f}" if m == "mib_s" else "{:.0f}"
        ceiling = ref.get("ceiling_in_guest", {}).get(k, {}).get(m)
        if ceiling:
            rows.append((f"{label}, the partition inside the VM, 1 in flight (same virtual disk for both)",
                         cell(ceiling, fmt), cell(ceiling, fmt), "-"))
    sf, rf = s.get("failover", {}), ref.get("failover", {})
    star_mem = spread(list((sf.get("memory_mib_per_controller") or {}).values()))
    rows.append(("memory in use per controller, two-controller array serving, MiB",
                 cell(star_mem, "{:.1f}"), cell(rf.get("memory_mib_per_node"), "{:.1f}"),
                 rat(med(star_mem), med(rf.get("memory_mib_per_node")))))
    rows.append(("failover: acknowledged writes lost",
                 str(sf["lost"]) if "lost" in sf else "-", str(rf["lost"]) if "lost" in rf else "-", "-"))
    rows.append(("failover: client gap after kill -9 of the active, s",
                 cell(sf.get("client_gap_s"), "{:.2f}"),
                 cell(rf.get("client_gap_s"), "{:.2f}") if rf.get("client_gap_s") else
                 ("did not run" if "error" in rf else "not measured"),
                 rat(med(sf.get("client_gap_s")), med(rf.get("client_gap_s")))))
    head = (f"# STAR against the traditional stack\n\n"
            f"{r['date']}, {r['runs']} runs each; {r['host']}; kernel {r['kernel']} for both.\n"
            f"Median (min–max). Raw figures: `{json_path}`. Reproduce: `make bench` "
            f"(or `bench/versus.py --runs N`); how each figure is taken: bench/versus.py.\n"
            f"The two systems boot in turn. A ratio is of the medians; for throughput, \"paired\" "
            f"is also the median (min–max) of the per-boot ratios, each STAR boot against the "
            f"reference boot right after it, which takes out most of the host's drift (±10 % over "
            f"minutes here).\n\n"
            "| figure | STAR | reference | STAR / reference |\n|---|---|---|---|\n")
    return head + "".join(f"| {a} | {b} | {c} | {d} |\n" for a, b, c, d in rows)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
