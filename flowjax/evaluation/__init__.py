"""Evaluation: identity distances, Action Units, metrics, tables and figures.

``pipeline`` (evaluate a transfer run or a study spec) reads studies through
``transfer_run`` and ``study``, scores them in ``scoring`` (scorers from
``scorers``: OpenFace runs in ``action_units``, its CSVs are parsed in
``openface_csv``; precomputed OpenFace CSVs and distances in ``precomputed``) and
writes ``tables``, ``figures`` and ``report``, which share the types of
``datatypes``. The metric definitions are ``metrics``'.
"""
