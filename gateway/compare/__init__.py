"""A/B comparisons: the runner, scoring, judge, statistics, reports and the service behind ``/v1/compare``."""
