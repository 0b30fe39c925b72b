"""`python -m studio.cluster_check MARKER TOKEN`: run as a Ray job by the studio at start-up.

On every live node of the cluster, a zero-CPU task reads MARKER, a file the studio has just
written into its workspace, and compares it with TOKEN: a node that cannot read it does not
see the workspace at the studio's path. Prints `DARKROOM-CHECK {"node address": true|false}`.
"""
import json
import sys


def main(argv=None) -> int:
    marker, token = (argv or sys.argv[1:])[:2]
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init(log_to_driver=False)  # inside a job: joins the job's cluster

    @ray.remote(num_cpus=0)
    def sees_marker(path, expected):
        try:
            with open(path) as f:
                return f.read() == expected
        except OSError:
            return False

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [sees_marker.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(marker, token) for n in nodes]
    answers = ray.get(refs, timeout=120)
    names = [f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})" for n in nodes]
    print("DARKROOM-CHECK " + json.dumps(dict(zip(names, answers))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
