"""A/B tests: variants, assignment, the analysis plan, eval-run and live observations, verdicts."""
