"""One process of tests/test_two_processes.py: a few training steps, then a sharded sweep.

``python tests/two_process_worker.py PROCESS_ID NUM_PROCESSES PORT OUT``. With
NUM_PROCESSES > 1 it joins a localhost ``jax.distributed`` job (coordinator on
127.0.0.1:PORT, JAX's CPU collectives), exactly as ``run.py`` does with
``config.distributed``; with 1 it is the single-process reference.
Writes ``OUT/process_<id>.npz`` (its parameters after training, the whole sweep grid and
the grid points it decoded itself, with their coordinates) and trains into ``OUT/train``.
"""

import os
import sys
from pathlib import Path

process_id, num_processes, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
if num_processes > 1:
    os.environ.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                      JAX_NUM_PROCESSES=str(num_processes), JAX_PROCESS_ID=str(process_id))
    from flowjax.runs import runtime
    runtime.initialize_distributed()

import importlib.util  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from flowjax.models import checkpoints  # noqa: E402
from flowjax.training import datasets, train
from flowjax.transfer import latents, sweep

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("train_config", ROOT / "configs" / "train.py")
config_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(config_module)
config = config_module.get_config("tiny")
config.progress = False
config.num_steps = 3
config.eval_every = 1000
config.checkpoint.update(every=3, async_save=False)
config.samples.update(n=0)

assert jax.process_count() == num_processes and jax.process_index() == process_id
summary = train.train(config, out / "train")
model, variables = checkpoints.load_model(out / "train")
leaves = {"params" + jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"])}

# The sweep: encode two identities' images and decode a transfer grid, both
# sharded over every process's devices (chunk_size is rounded up to them).
images = datasets.generated_images(1, 12, model.image_size)
flat = latents.flatten(list(sweep.encode_images(model, variables, images, chunk_size=4).eps))
flat = np.asarray(flat)
source, target = latents.identity_stats(flat[:6]), latents.identity_stats(flat[6:])
grid = sweep.transfer_sweep(model, variables, flat[[0, 3]], latents.stack_stats([source] * 2),
                            latents.stack_stats([target]), [0.0, 0.5, 1.0], chunk_size=2)
share = sweep.transfer_sweep(model, variables, flat[[0, 3]], latents.stack_stats([source] * 2),
                             latents.stack_stats([target]), [0.0, 0.5, 1.0], chunk_size=2,
                             process_share=True)
np.savez(out / f"process_{process_id}.npz", devices=summary["devices"], grid=grid,
         share_points=share.points, share_images=share.images, **leaves)
print("WORKER_OK", process_id)
