"""`python -m studio.ray_ddp --workspace WS RUN_ID --processes N`: one run, N processes, DDP.

Submitted by the studio as a run's Ray job when the run asks for several processes (more GPUs
than one node may have). The rendezvous is what torchrun would set up, with Ray placing the
processes: a placement group of N bundles (packed onto as few nodes as have room, spread over
several when one is not enough), rank 0's node address and a free port there as MASTER_ADDR and
MASTER_PORT, and in every bundle the same `python -m studio.worker` with RANK and WORLD_SIZE.
trainers.fit then trains with DistributedDataParallel (gloo on CPUs, NCCL on GPUs); rank 0
reports and writes the run's files as under torchrun, the other ranks only train.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys

from .remote_store import RemoteStore

PLACEMENT_TIMEOUT_S = 600


def _die_with_parent():
    """In the rank's process: SIGKILL it when the Ray worker that started it goes (Linux)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.ray_ddp")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--cpus", type=float, default=1)
    parser.add_argument("--gpus", type=float, default=0)
    parser.add_argument("run_id")
    args = parser.parse_args(argv)
    remote = RemoteStore.from_env(args.run_id)

    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    ray.init()  # inside the job: its cluster and runtime_env (code, DARKROOM_REPORT_*)
    bundle = {"CPU": args.cpus, **({"GPU": args.gpus} if args.gpus else {})}
    group = placement_group([bundle] * args.processes, strategy="PACK")
    remote.append_log(args.run_id, f"waiting for {args.processes} x {bundle} on the cluster")
    ray.get(group.ready(), timeout=PLACEMENT_TIMEOUT_S)
    nodes = ray.util.placement_group_table(group)["bundles_to_node_id"]
    for rank in range(args.processes):
        remote.append_log(args.run_id, f"rank {rank} of {args.processes} placed on node {nodes[rank]}")

    def place(i):
        return PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i)

    @ray.remote(num_cpus=0)
    def rendezvous():
        with socket.socket() as s:  # a free port on rank 0's node; torch binds it a moment later
            s.bind(("", 0))
            return ray.util.get_node_ip_address(), s.getsockname()[1]

    @ray.remote
    def rank_process(rank, world, master):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
                   MASTER_ADDR=master[0], MASTER_PORT=str(master[1]))
        code = subprocess.call([sys.executable, "-m", "studio.worker", "--workspace", args.workspace, args.run_id],
                               env=env, preexec_fn=_die_with_parent)
        return code

    master = ray.get(rendezvous.options(scheduling_strategy=place(0)).remote())
    refs = [rank_process.options(num_cpus=args.cpus, num_gpus=args.gpus, scheduling_strategy=place(i))
            .remote(i, args.processes, master) for i in range(args.processes)]
    pending, failed = list(refs), None
    while pending and failed is None:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            code = ray.get(done[0])
            if code != 0:
                failed = f"rank {refs.index(done[0])} exited with code {code}"
        except Exception as e:  # a lost node, a killed worker
            failed = f"a rank was lost: {type(e).__name__}"
    if failed:
        # Every rank must go: a survivor would wait for its peers in a collective forever.
        for ref in pending:
            ray.cancel(ref, force=True)
        print(f"darkroom: {failed}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
