"""Security controls, a test module per area (docs/security.md lists each control and its test)."""
