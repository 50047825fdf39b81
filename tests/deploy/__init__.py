"""Checks of the deployment artefacts: Grafana dashboards, Prometheus rules and example configs."""
