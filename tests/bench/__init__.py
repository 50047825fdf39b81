"""Tests for the benchmark scripts in bench/: their configuration, parsing and report code."""
