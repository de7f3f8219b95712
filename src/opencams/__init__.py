"""opencams: a self-hosted, SDK-compatible CAMS chat-group API with a WhatsApp simulator."""

__version__ = "0.1.0"
