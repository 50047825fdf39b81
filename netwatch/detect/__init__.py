"""The detection stage: which flows belong to cameras, what their group allows, and the rules."""
