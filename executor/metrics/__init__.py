"""What `GET /metrics` shows (API.md 1.1 Metrics), in the Prometheus text format.

- `figures.py`: the job figures, kept in Redis by the writes that submit, run and settle jobs;
- `exposition.py`: those figures, the live gauges and the web's request counts as one scrape.
"""
