"""Scores: window metrics, map metrics, map scoring, realism, budgets, factors."""
