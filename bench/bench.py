"""Benchmark: the link done three ways on one sandbox, interleaved, several rounds.

(a) the AWS CLI, one command per step, as a person types the page's procedure;
(b) a bare boto3 script doing the same calls (``bench/boto3_link.py``);
(c) ``runbook run``, full: every section, executed notebooks, audit log, run.json.

Each round uses new names, so every way does a first link (creates
everything). A first round, not counted, warms the sandbox up for all
three. The order of the three ways rotates from round to round, so none
always runs on a warmer machine. Prints the medians, the ratios
runbook/CLI and runbook/boto3 against the targets, and the runbook's peak
memory (the whole process tree: the CLI and its kernel), measured in a run
of its own, since reading /proc while a run is timed slows it down. The
figures are ratios measured in the same run, because the machine is shared
and noisy.

    make bench                       # 5 rounds
    .venv/bin/python bench/bench.py --rounds 9
"""

from __future__ import annotations

import argparse
import compileall
import configparser
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET_VS_CLI = 0.5
TARGET_VS_BOTO3 = 3.0
DOCUMENT = {"Version": "2012-10-17", "Statement": [
    {"Action": ["ec2:*", "iam:ListInstanceProfiles"], "Effect": "Allow", "Resource": "*"}]}


def tree_peaks_kb(root_pid: int, peaks: dict[int, int]) -> None:
    """Record in ``peaks`` the peak resident memory (VmHWM) of ``root_pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    hwm: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/status") as handle:
                kb = next((int(line.split()[1]) for line in handle if line.startswith("VmHWM:")),
                          0)
        except (OSError, StopIteration, ValueError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        hwm[int(entry)] = kb
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        peaks[pid] = max(peaks.get(pid, 0), hwm.get(pid, 0))
        stack.extend(children.get(pid, []))


def timed(command: list[str], env: dict[str, str], *, sample_memory: bool = False,
          ok_codes: tuple[int, ...] = (0,)) -> tuple[float, int, str]:
    """Run ``command``; return (seconds, peak memory in KB or 0, stdout).

    With ``sample_memory`` the peak is the sum of each process's own peak
    (VmHWM) over the command's process tree, read every 50 ms: an upper
    bound of what the tree held at once. Reading /proc takes CPU from the
    command, so timed runs do not sample.
    """
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    if sample_memory:
        def sample() -> None:
            while process.poll() is None:
                tree_peaks_kb(process.pid, peaks)
                time.sleep(0.05)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    if sample_memory:
        sampler.join()
    peak = sum(peaks.values())
    if process.returncode not in ok_codes:
        raise SystemExit(f"{command[:3]} exited {process.returncode}: {err[-2000:]}")
    return seconds, peak, out


class Sandbox:
    """One sandbox for the whole benchmark, in a home of its own, stopped at the end."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="runbook-bench-"))
        self.env = {**os.environ, "RUNBOOK_HOME": str(self.home)}
        subprocess.run([str(BIN / "runbook"), "sandbox", "start"], env=self.env, check=True,
                       stdout=subprocess.DEVNULL)
        state = json.loads((self.home / "sandbox" / "state.json").read_text())
        self.endpoint = state["endpoint"]
        self.account = state["account_id"]
        self.aws_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.aws_env.update({
            "AWS_ACCESS_KEY_ID": state["operator_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": state["operator_secret_access_key"],
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "cli-credentials"),
        })

    def stop(self) -> None:
        subprocess.run([str(BIN / "runbook"), "sandbox", "stop"], env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.home, ignore_errors=True)


def by_cli(box: Sandbox, name: str) -> float:
    """(a) The page's procedure typed with the AWS CLI, one command per step."""
    aws = [str(BIN / "aws"), "--endpoint-url", box.endpoint, "--output", "json"]
    doc = box.home / "policy.json"
    doc.write_text(json.dumps(DOCUMENT))
    clock = 0.0
    steps = [["iam", "create-user", "--user-name", name]]
    for step in steps:
        clock += timed(aws + step, box.aws_env)[0]
    seconds, _, out = timed(aws + ["iam", "create-access-key", "--user-name", name], box.aws_env)
    clock += seconds
    key = json.loads(out)["AccessKey"]
    # What the person does next by hand: keep the pair in a profile (not timed).
    creds = configparser.RawConfigParser()
    creds.read(box.aws_env["AWS_SHARED_CREDENTIALS_FILE"])
    creds[name] = {"aws_access_key_id": key["AccessKeyId"],
                   "aws_secret_access_key": key["SecretAccessKey"]}
    del key, out
    path = Path(box.aws_env["AWS_SHARED_CREDENTIALS_FILE"])
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        creds.write(handle)
    arn = f"arn:aws:iam::{box.account}:policy/{name}"
    for step in (["iam", "create-policy", "--policy-name", name, "--policy-document",
                  f"file://{doc}"],
                 ["iam", "attach-user-policy", "--user-name", name, "--policy-arn", arn]):
        clock += timed(aws + step, box.aws_env)[0]
    own = {k: v for k, v in box.aws_env.items() if k not in ("AWS_ACCESS_KEY_ID",
                                                             "AWS_SECRET_ACCESS_KEY")}
    for step in (["sts", "get-caller-identity"], ["ec2", "describe-regions"],
                 ["iam", "list-instance-profiles"]):
        clock += timed(aws + ["--profile", name] + step, own)[0]
    # A dry run answers DryRunOperation, which AWS CLI v1 reports with exit code 255 (v2: 254).
    clock += timed(aws + ["--profile", name, "ec2", "run-instances", "--dry-run", "--image-id",
                          "ami-12c6146b", "--instance-type", "t2.micro", "--count", "1"],
                   own, ok_codes=(254, 255))[0]
    return clock


def by_boto3(box: Sandbox, name: str) -> float:
    """(b) The same calls in a bare boto3 script, run as its own process."""
    return timed([sys.executable, str(ROOT / "bench" / "boto3_link.py"), name, name],
                 box.aws_env)[0]


def by_runbook(box: Sandbox, name: str, extra: list[str] = (),
               sample_memory: bool = False) -> tuple[float, int]:
    """(c) ``runbook run``, every section, with its run folder: (seconds, peak memory KB)."""
    seconds, peak, _ = timed(
        [str(BIN / "runbook"), "run", "-p", "user_name", name, "-p", "policy_name", name,
         "-p", "credentials_profile", name, "--out", str(box.home / "runs"), *extra],
        box.env, sample_memory=sample_memory)
    return seconds, peak


def region_growth(box: Sandbox, rounds: int) -> list[str]:
    """Time a run whose verification checks one region against one that checks all."""
    from runbook import params

    if "verify_regions" not in params.ALL_NAMES:
        return ["(section 05 has no verify_regions parameter yet: region growth not measured)"]
    from runbook.params import known_regions  # noqa: F401  (botocore's region data)

    one, every = [], []
    for number in range(rounds):
        one.append(by_runbook(box, f"bench-r1-{number}", ["-p", "verify_regions", "us-east-1"])[0])
        every.append(by_runbook(box, f"bench-ra-{number}")[0])
    runs = sorted((box.home / "runs").iterdir())
    last = json.loads((runs[-1] / "run.json").read_text())
    verify = next(s for s in last["sections"] if s["name"] == "05_verify_link")
    count = len(verify["regions_allowed"]) + len(verify["regions_denied"])
    a, b = statistics.median(one), statistics.median(every)
    return [f"| run, verification in 1 region | {a:.2f} s |",
            f"| run, verification in all {count} regions | {b:.2f} s |",
            f"| cost per extra region | {(b - a) / max(count - 1, 1) * 1000:.1f} ms |"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # Measure the package as `make` installs it, byte-compiled (see the Makefile).
    compileall.compile_dir(ROOT / "runbook", quiet=1)
    box = Sandbox()
    cli, boto, book = [], [], []
    ways = [("cli", lambda n: cli.append(by_cli(box, n))),
            ("boto3", lambda n: boto.append(by_boto3(box, n))),
            ("runbook", lambda n: book.append(by_runbook(box, n)[0]))]
    try:
        # Not counted: moto creates a region's EC2 backend on the first request
        # there (about 30 ms each), which the first run to try all regions pays.
        for label, way in ways:
            way(f"bench-warm-{label}")
        del cli[:], boto[:], book[:]
        for number in range(args.rounds):
            order = ways[number % 3:] + ways[:number % 3]
            for label, way in order:
                way(f"bench-{label}-{number}")
            print(f"round {number + 1}/{args.rounds}: cli {cli[-1]:.2f} s, boto3 {boto[-1]:.2f} s, "
                  f"runbook {book[-1]:.2f} s", file=sys.stderr, flush=True)
        growth = region_growth(box, max(3, args.rounds // 2))
        peak = by_runbook(box, "bench-memory", sample_memory=True)[1]
    finally:
        box.stop()
    m_cli, m_boto, m_book = (statistics.median(x) for x in (cli, boto, book))
    vs_cli, vs_boto = m_book / m_cli, m_book / m_boto
    verdict = lambda ratio, target: "meets" if ratio <= target else "MISSES"
    lines = [
        f"Benchmark of {datetime.now(timezone.utc):%Y-%m-%d}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{args.rounds} rounds, medians:",
        "",
        "| way | median |",
        "| --- | --- |",
        f"| (a) AWS CLI, one command per step | {m_cli:.2f} s |",
        f"| (b) bare boto3 script | {m_boto:.2f} s |",
        f"| (c) `runbook run`, full | {m_book:.2f} s |",
        f"| runbook / CLI | {vs_cli:.2f} (target <= {TARGET_VS_CLI}: "
        f"{verdict(vs_cli, TARGET_VS_CLI)}) |",
        f"| runbook / boto3 | {vs_boto:.2f} (target <= {TARGET_VS_BOTO3}: "
        f"{verdict(vs_boto, TARGET_VS_BOTO3)}) |",
        f"| runbook peak memory (CLI + kernel, a run of its own) | {peak / 1024:.0f} MiB |",
        *growth,
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
