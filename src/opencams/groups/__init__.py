"""The chat-group domain: one function per CAMS action, validation, status rules, webhook effects.

Imports no web framework and no HTTP client.
"""
