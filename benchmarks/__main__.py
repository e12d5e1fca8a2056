"""``python -m benchmarks``: the relay's benchmark suite, in one command.

Runs issue 5's workloads against our relay and, where Node and ``shared/bench``
are there, against the reference peer, alternating the two (A B A B ...) for a
number of rounds, then prints a table of medians and ratios ours/peer, and
optionally writes every raw figure as JSON.  ``--smoke`` runs the same shapes
for about a second each at tiny sizes: CI runs it so the suite keeps working.
See ``benchmarks/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import resource
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import orjson

from benchmarks import api, relays, report
from benchmarks.fanout import FanoutRun, run_fanout
from benchmarks.idle import IdleRun, run_idle
from benchmarks.relays import RelayError, Target
from benchmarks.workloads import (
    FULL_TIMING,
    SMOKE_IDLE_SESSIONS,
    SMOKE_TIMING,
    WORKLOADS,
    Timing,
    Workload,
    by_name,
    smoke,
)

REPO = Path(__file__).resolve().parent.parent
IDLE = "idle"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = [workload.name for workload in WORKLOADS] + [IDLE]
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="every workload for about a second at tiny sizes (CI)")
    parser.add_argument("--only", action="append", choices=names, help="run only this workload (repeatable)")
    parser.add_argument("--rounds", type=int, help="runs per relay and workload, alternating (default 3, smoke 1)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, help="seconds sent before measuring (default 1)")
    parser.add_argument("--drain", type=float, help="seconds to wait for late frames (default 2)")
    parser.add_argument("--idle-sessions", type=int, help="idle sessions to open (default 2000, smoke 50)")
    parser.add_argument("--idle-hold", type=float, help="seconds to hold them before reading RSS (default 5)")
    parser.add_argument("--consumer-processes", type=int, default=2, help="processes the consumers share (2)")
    parser.add_argument("--idle-processes", type=int, default=2, help="processes opening idle sessions (2)")
    parser.add_argument("--relay-url", help="measure this running relay instead of starting one")
    parser.add_argument("--token", help="a token the relay at --relay-url accepts")
    parser.add_argument("--relay-pid", type=int, help="its PID (default: the process listening on its port)")
    parser.add_argument("--peer-dir", type=Path, help="the shared bench folder (default ../shared/bench)")
    parser.add_argument("--no-peer", action="store_true", help="measure our relay only")
    parser.add_argument("--json", type=Path, help="write every run's raw figures and the summary here")
    args = parser.parse_args(argv)
    if args.relay_url and not args.token:
        parser.error("--relay-url needs --token")
    return args


def raise_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit (inherited by relays and workers)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpuModel": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "openFileLimit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def find_peer(args: argparse.Namespace) -> tuple[Path | None, str]:
    """The peer's script, ready to run, or None and why not."""
    if args.no_peer:
        return None, "--no-peer"
    source = relays.find_peer_source(REPO, args.peer_dir)
    if source is None:
        return None, f"no peer/ws-relay.js in {args.peer_dir or REPO.parent / 'shared' / 'bench'}"
    try:
        return relays.prepare_peer(source), str(source)
    except (RelayError, OSError, subprocess.SubprocessError) as error:
        return None, str(error)


@contextlib.asynccontextmanager
async def fresh_relays(args: argparse.Namespace, peer_script: Path | None) -> AsyncIterator[list[Target]]:
    """Our relay (started fresh, or the one at --relay-url) and, if any, a fresh peer."""
    async with contextlib.AsyncExitStack() as stack:
        if args.relay_url:
            targets = [relays.external(report.OURS, args.relay_url, args.token, args.relay_pid)]
            if not await api.healthy(targets[0].url):
                raise RelayError(f"no relay answers GET {targets[0].url}/api/health")
        else:
            targets = [await stack.enter_async_context(relays.ours())]
        if peer_script is not None:
            targets.append(await stack.enter_async_context(relays.peer(peer_script)))
        yield targets


def progress(run: FanoutRun | IdleRun, seconds: float) -> None:
    """One line on stderr per run, with the CPU shares that tell who set the pace."""
    if isinstance(run, FanoutRun):
        figures = (
            f"fps={run.delivered_fps} MB/s={run.delivered_mbps} p50={run.latency_ms.get('p50')} "
            f"p99={run.latency_ms.get('p99')} lost={run.lost_pct}% cpuS/GB={run.cpu_s_per_gb} "
            f"cpuµs/frame={run.cpu_us_per_frame} peakRSS={run.peak_rss_mb}MB "
            f"relay CPU {100 * (run.relay_cpu_s or 0) / seconds:.0f}% "
            f"load generator CPU {'/'.join(f'{pct:.0f}' for pct in run.loadgen_cpu_pct.values())}% "
            f"rest of machine {run.others_cpu_pct}%"
        )
        where = run.workload
    else:
        figures = f"opened={run.opened} KB/session={run.kb_per_session} cpu ms/connect={run.cpu_ms_per_connect}"
        where = IDLE
    errors = f" errors={len(run.errors)}" if run.errors else ""
    print(f"{where} round {run.round} {run.relay}: {figures}{errors}", file=sys.stderr, flush=True)


async def run_suite(
    args: argparse.Namespace, workloads: list[Workload], timing: Timing, rounds: int, peer_script: Path | None
) -> tuple[list[FanoutRun], list[IdleRun]]:
    fanout_runs: list[FanoutRun] = []
    idle_runs: list[IdleRun] = []
    async with contextlib.AsyncExitStack() as stack:
        # A smoke run keeps one pair of relays; a real one starts fresh relays per workload, so one
        # workload's leftovers (memory, queues) do not weigh on the next, and per idle run, because
        # memory freed by an earlier run would hide what the sessions cost.
        shared = await stack.enter_async_context(fresh_relays(args, peer_script)) if args.smoke else None

        def relays_for_run() -> contextlib.AbstractAsyncContextManager[list[Target]]:
            return contextlib.nullcontext(shared) if shared is not None else fresh_relays(args, peer_script)

        for workload in workloads:
            async with relays_for_run() as targets:
                for round_number in range(1, rounds + 1):
                    for target in targets:
                        run = await run_fanout(target, workload, timing, round_number, args.consumer_processes)
                        progress(run, timing.seconds)
                        fanout_runs.append(run)
                        await asyncio.sleep(timing.pause)
        for round_number in range(1, rounds + 1 if args.idle_sessions else 1):
            async with relays_for_run() as targets:
                for target in targets:
                    idle = await run_idle(target, args.idle_sessions, round_number, args.idle_processes, args.idle_hold)
                    progress(idle, timing.seconds)
                    idle_runs.append(idle)
    return fanout_runs, idle_runs


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    only = args.only or [workload.name for workload in WORKLOADS] + [IDLE]
    workloads = by_name([name for name in only if name != IDLE])
    given = {name: getattr(args, name) for name in ("warmup", "seconds", "drain") if getattr(args, name) is not None}
    timing = replace(SMOKE_TIMING if args.smoke else FULL_TIMING, **given)
    if args.smoke:
        workloads = [smoke(workload) for workload in workloads]
    rounds = args.rounds or (1 if args.smoke else 3)
    if IDLE not in only:
        args.idle_sessions = 0
    elif args.idle_sessions is None:
        args.idle_sessions = SMOKE_IDLE_SESSIONS if args.smoke else 2000
    if args.idle_hold is None:
        args.idle_hold = 0.5 if args.smoke else 5.0
    file_limit = raise_file_limit()
    if args.idle_sessions + 200 > file_limit:
        print(
            f"warning: {args.idle_sessions} sessions need more than the open-file limit {file_limit}", file=sys.stderr
        )

    peer_script, peer_note = find_peer(args)
    if peer_script is None:
        print(f"reference peer not measured: {peer_note}", file=sys.stderr)
    started = datetime.datetime.now(datetime.UTC)
    measured_commit = commit()
    try:
        fanout_runs, idle_runs = asyncio.run(run_suite(args, workloads, timing, rounds, peer_script))
    except RelayError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    fanout_summary = {
        workload.name: report.summarise(
            [run for run in fanout_runs if run.workload == workload.name], report.FANOUT_COLUMNS
        )
        for workload in workloads
    }
    idle_summary = {f"{args.idle_sessions} idle": report.summarise(idle_runs, report.IDLE_COLUMNS)} if idle_runs else {}
    if fanout_summary:
        print(report.table("workload", fanout_summary, report.FANOUT_COLUMNS))
    if idle_summary:
        print()
        print(report.table("sessions", idle_summary, report.IDLE_COLUMNS))
    errors = report.error_lines([*fanout_runs, *idle_runs])
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    if args.json:
        results = {
            "meta": {
                "date": started.isoformat(timespec="seconds"),
                "commit": measured_commit,
                "command": shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)]),
                "machine": machine(),
                "peer": str(peer_script) if peer_script else None,
                "peerNote": peer_note,
                "timing": asdict(timing),
                "rounds": rounds,
                "smoke": args.smoke,
                "workloads": {workload.name: asdict(workload) for workload in workloads},
            },
            "fanout": {"runs": [asdict(run) for run in fanout_runs], "summary": fanout_summary},
            "idle": {"runs": [asdict(run) for run in idle_runs], "summary": idle_summary},
        }
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
