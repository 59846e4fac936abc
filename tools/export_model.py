"""Export a training workdir's latest checkpoint as a standalone model directory.

    python -m tools.export_model --workdir=runs/glow-demo --out=weights/demo/glow

writes ``checkpoints.save_model``'s layout (``model_config.json``,
``variables/``, ``metadata.json`` with the training step, the workdir's last
train and held-out bits/dim, and the training config: the newest, with every config a
resumed run was started with beside it). This is how the
shipped demo model (weights/demo/glow) was made; see weights/demo/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from flowjax.models import checkpoints
from flowjax.training import log
from flowjax.runs import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (experiments/train.py).")
_OUT = flags.DEFINE_string("out", None, "New directory for the exported model.")


def last_metrics(workdir: Path, up_to_step: int) -> dict[str, dict]:
    """The last line of each split ("train", "eval") in metrics.jsonl logged at or
    before ``up_to_step`` (a run may have logged past its last checkpoint)."""
    last: dict[str, dict] = {}
    metrics = workdir / log.METRICS_NAME
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            record = json.loads(line)
            if "split" in record and record.get("step", 0) <= up_to_step:
                last[record["split"]] = record
    return last


def training_configs(workdir: Path) -> dict[str, dict]:
    """The configs the run was started and resumed with, oldest first, by file name:
    ``config.json``, then each ``config.resumed-<time>.json`` (written when a resume
    changed the config, e.g. its schedule), so the last is what the final steps ran."""
    paths = [workdir / "config.json", *sorted(workdir.glob("config.resumed-*.json"))]
    return {p.name: json.loads(p.read_text()) for p in paths if p.is_file()}


def export(workdir: str | Path, out: str | Path) -> Path:
    workdir = Path(workdir)
    model, variables = checkpoints.load_model(workdir)
    step = checkpoints.latest_step(workdir)
    metrics = {split: {k: record[k] for k in ("step", "bits_per_dim") if k in record}
               for split, record in last_metrics(workdir, step).items()}
    configs = training_configs(workdir)
    return checkpoints.save_model(out, model, variables, metadata={
        "source_workdir": str(workdir), "step": step, "metrics": metrics,
        # the newest config (the final steps'), and every one the pieces ran with
        "training_config": list(configs.values())[-1] if configs else None,
        "training_configs": configs})


def main(argv):
    del argv
    print(export(_WORKDIR.value, _OUT.value))


if __name__ == "__main__":
    flags.mark_flags_as_required(["workdir", "out"])
    runtime.run(main)
