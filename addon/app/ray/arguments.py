"""The Ray options of ``facepolicy bake`` (--executor, --address, --ray-data, --ray-retries) and the executor they
ask for. Importing this module does not import Ray."""

from __future__ import annotations

from ...core.batch.model_shipping import MODEL_LIMIT
from ...core.errors import FacePolicyError
from .limits import BLEND_LIMIT, DATA_MODES, OBJECT_STORE_LIMIT


def add_arguments(parser) -> None:
    """The Ray options of `facepolicy bake`."""
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="where lines are baked: local processes (--jobs) or Ray tasks (default: local); "
                        "with ray and no --address, --jobs N gives the local Ray instance N CPUs (default: all)")
    parser.add_argument("--address", metavar="HOST:PORT",
                        help="with --executor ray: the Ray head node to join (default: start Ray on this machine, "
                        "listening on 127.0.0.1 only)")
    parser.add_argument("--ray-data", choices=DATA_MODES, default="shared",
                        help="with --executor ray: 'shared' when every node sees the same paths (default), "
                        f"'object-store' to send inputs and outputs (up to {OBJECT_STORE_LIMIT // 2**20} MiB a line), "
                        f"and, once a batch, the --blend file (up to {BLEND_LIMIT // 2**20} MiB) and each model folder "
                        f"(up to {MODEL_LIMIT // 2**20} MiB) through Ray")
    parser.add_argument("--ray-retries", type=int, default=3, metavar="N",
                        help="with --executor ray: retries of a line whose worker crashed (default: 3)")


def executor_from_args(args):
    """The RayExecutor (app.ray.executor) the arguments ask for, or None for the local executors."""
    if getattr(args, "executor", "local") != "ray":
        if getattr(args, "address", None):
            raise FacePolicyError("--address needs --executor ray")
        return None
    from .executor import RayExecutor  # only when asked for: the executor's imports cost every bake

    jobs = getattr(args, "jobs", 1)
    return RayExecutor(getattr(args, "address", None), data=getattr(args, "ray_data", "shared"),
                       max_retries=getattr(args, "ray_retries", 3),
                       num_cpus=jobs if jobs and jobs > 1 and not getattr(args, "address", None) else None)
