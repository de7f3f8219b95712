"""Declarative provisioning from a YAML file (`opencams apply FILE`): schema, validation, apply.

Depends on `store` (rows) and on `access.policy` (policy documents are validated at apply time);
nothing depends on it but the CLI.
"""
