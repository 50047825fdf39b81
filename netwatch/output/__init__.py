"""Record writers at the edge of the pipeline (flow log, alert log)."""
