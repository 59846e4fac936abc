"""Score a finished reenactment run against its actor with real scorers (issue #24).

A reenactment of your own clip or photos has no exact answer; this scores it frame by
frame and over time against the actor (flowjax.evaluation.clip_scores): AU error
against the actor's expression, identity distance to the target's photos and to the
actor, AU jitter against the actor's own change. Commands::

    # 1. reenact your clip (configs/reenact.py)
    python run.py --config=configs/reenact.py --config.actor.video=clip.mp4 --config.align=True \\
        --config.align_detector=dlib --config.evaluation.enabled=False --workdir=runs/mine
    # 2. OpenFace 2.x on the run's videos (one CSV per video, named after it)
    for v in runs/mine/videos/actor.mp4 runs/mine/videos/id*.mp4; do
        FeatureExtraction -f "$v" -aus -out_dir runs/mine-openface; done
    # 3. score, in place into runs/mine/scores/
    python run.py --config=configs/score_reenactment.py --config.run_dir=runs/mine \\
        --config.action_units.csv_dir=runs/mine-openface --workdir=runs/mine

Without OpenFace, a pixel AU scorer scores the frames instead
(``--config.action_units.backend=openface`` runs FaceLandmarkImg; ``synthetic`` for
flowjax.synthetic faces only). Identity: ``dlib`` (the default: ``.[faces]``, offline),
``facenet``, ``synthetic`` or ``none``, with the options of configs/evaluate.py.

Fields: run_dir (the reenactment run; None: the workdir itself), out_subdir (``scores``:
where an in-place scoring goes), overwrite; action_units: csv_dir (FeatureExtraction
CSVs ``actor.csv``, ``<target>.csv``), aus (``"all"``: every AU the scorer gives, or
``"AU06,AU12,..."``), threshold (active AUs), backend (a pixel AU scorer when csv_dir is
unset); identity: as configs/evaluate.py.
"""

import ml_collections
from ml_collections import config_dict

from flowjax.runs.runtime import config_module

evaluate = config_module("evaluate", __file__)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    base = evaluate.get_config()
    config = ml_collections.ConfigDict()
    config.experiment = "score_reenactment"
    config.run_dir = config_dict.placeholder(str)
    config.out_subdir = "scores"
    config.overwrite = False
    config.identity = base.identity
    config.identity.backend = "dlib"
    config.action_units = base.action_units
    config.action_units.csv_dir = config_dict.placeholder(str)
    config.action_units.aus = "all"
    return config
