"""Evaluation: identity distances, Action Units, metrics, tables and figures.

``pipeline`` (evaluate a transfer run or a study spec) reads studies through
``transfer_run`` and ``study``, scores them in ``scoring`` (scorers from
``scorers``; precomputed OpenFace CSVs and distances in ``precomputed``) and
writes ``tables``, ``figures`` and ``report``, which share the types of
``datatypes``. The metric definitions are ``metrics``'.
"""
