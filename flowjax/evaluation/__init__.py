"""Evaluation: identity distances, Action Units, metrics, tables and figures."""
