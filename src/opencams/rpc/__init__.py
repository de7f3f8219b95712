"""The CAMS wire: request parsing, signature verification, envelopes, errors, the action table."""
