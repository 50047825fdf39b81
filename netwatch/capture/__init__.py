"""Capture sources: where frames come from (capture files now, live sockets later)."""
