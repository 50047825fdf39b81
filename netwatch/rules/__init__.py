"""Detection rules: one module per rule id (DESIGN.md), each yielding alerts with evidence."""
