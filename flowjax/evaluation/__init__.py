"""Evaluation: identity distances, Action Units, metrics, tables, figures and the viewer.

``pipeline`` (evaluate a transfer run or a study spec) reads studies through
``transfer_run`` and ``study``, scores them in ``scoring`` (scorers from
``scorers``: OpenFace runs in ``action_units``, its CSVs are parsed in
``openface_csv``; precomputed OpenFace CSVs and distances in ``precomputed``;
facenet in ``identity`` with ``facenet_weights``, dlib in ``dlib_identity``,
where they found faces, and where not, in ``faces_found``; the synthetic
faces' own scorers in ``synthetic_scorers``) and writes
``tables``, ``figures``, ``report`` and the static ``viewer`` page, which share
the types of ``datatypes``. The metric definitions are ``metrics``'. The
ground-truth benchmark of the synthetic faces is ``ground_truth`` (with the
fakes of ``fakes`` for its realism detector, each row's alpha chosen on held-out
targets in ``alpha_choice``, and its rows' error bars, clustered by expression and
target, in ``error_bars``). A reenacted clip is scored frame
by frame and over time against its exact answer by ``reenactment``, and played
beside its curves by ``clip_viewer``.

Names load on first use: the identity backends import torch, which an
evaluation with the synthetic scorers never needs.

May import: flowjax.runs, flowjax.transfer, flowjax.faces, flowjax.synthetic,
flowjax.io.
"""

from flowjax import lazy_exports

_EXPORTS = {
    "evaluate_run": "flowjax.evaluation.pipeline",
    "evaluate_study": "flowjax.evaluation.pipeline",
    "load_study": "flowjax.evaluation.study",
    "read_transfer_run": "flowjax.evaluation.transfer_run",
    "Study": "flowjax.evaluation.datatypes",
    "TransferRun": "flowjax.evaluation.datatypes",
    "Scores": "flowjax.evaluation.datatypes",
    "build_identity_embedder": "flowjax.evaluation.scorers",
    "build_au_scorer": "flowjax.evaluation.scorers",
    "build_detector": "flowjax.evaluation.scorers",
    "identity_distance": "flowjax.evaluation.metrics",
    "au_mean_error": "flowjax.evaluation.metrics",
    "best_alpha": "flowjax.evaluation.metrics",
    "FaceEmbedder": "flowjax.evaluation.identity",
    "OpenFaceScorer": "flowjax.evaluation.action_units",
    "write_viewer": "flowjax.evaluation.viewer",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
