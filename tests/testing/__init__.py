"""Tests for netwatch.testing (synthetic traffic builders) and the generators built on it."""
