"""The connector to Meta's WhatsApp Cloud API (Graph).

HTTP client, webhook verification, payload types.

Knows neither the database nor the chat-group domain.
"""
