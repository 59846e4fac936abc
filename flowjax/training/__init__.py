"""Training a flow: train state, pure jitted steps, optimizers, data, the log.

* ``train`` -- the train state, the donated, jitted train and eval steps,
  data-parallel over every device, and the resumable loop (``train.train``:
  the function keeps its module's name, so this package does not re-export it);
* ``optimizers`` -- optimizers described by a hashable :class:`OptimizerSpec`;
* ``datasets`` -- seeded, shuffled, batched images and a prefetching thread;
* ``config_checks`` -- the training config checked against the data before any
  work (each error names the flag to change), unset held-out and init sizes fitted;
* ``log`` -- ``metrics.jsonl`` (and TensorBoard events, when installed).

May import: flowjax.models, flowjax.flows, flowjax.synthetic, flowjax.io.
"""

from flowjax.training.datasets import ArrayDataset, ImageFolderDataset, make_datasets
from flowjax.training.log import METRICS_NAME, MetricWriter
from flowjax.training.optimizers import OptimizerSpec, openai_adamax
from flowjax.training.train import TrainState, create_train_state, make_train_step

__all__ = [
    "TrainState", "create_train_state", "make_train_step", "OptimizerSpec", "openai_adamax",
    "make_datasets", "ArrayDataset", "ImageFolderDataset", "MetricWriter", "METRICS_NAME",
]
