"""python -m trainers CONFIG.json --out DIR [--resume] [--device cpu|cuda|mps]"""
import argparse
import sys

from .config import RunConfig
from .errors import ConfigError
from .fit import fit
from .reporting import ConsoleReporter, Reporter


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers", description="Train a Darkroom run headless.")
    parser.add_argument("config", help="a RunConfig JSON file (keys in docs/CONFIG.md)")
    parser.add_argument("--out", required=True, help="folder for checkpoints, samples, metrics and log")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    args = parser.parse_args(argv)
    try:
        config = RunConfig.load(args.config)
        from .device import use_cpu_threads

        use_cpu_threads()
        import os
        quiet = int(os.environ.get("RANK", "0")) != 0
        result = fit(config, args.out, ConsoleReporter() if not quiet else Reporter(),
                     resume=args.resume, device=args.device)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; resume with --resume", file=sys.stderr)
        return 130
    if not quiet:
        print(f"{result.status}: {result.epochs_done} epochs, best {result.monitor} "
              f"{result.best_metric}, on {result.device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
