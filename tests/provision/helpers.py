"""A small valid tenancy document (one account, space and number) for the provisioning tests."""

from __future__ import annotations

from typing import Any

DOC: dict[str, Any] = {
    "whatsapp": {"app_secret": "app-secret-0123456789abcdef", "verify_token": "verify-token"},
    "accounts": [
        {
            "id": "1000000000000001",
            "name": "acme",
            "chat_groups_allowlisted": True,
            "access_keys": [{"id": "LTAI5tAcmeRootKey01", "secret": "acme-secret-0123456789"}],
            "spaces": [
                {
                    "id": "cams-acme01",
                    "name": "Acme",
                    "business_numbers": [
                        {
                            "number": "8613800000001",
                            "phone_number_id": "110000000000001",
                            "waba_id": "210000000000001",
                            "access_token": "meta-token-acme",
                        }
                    ],
                }
            ],
        }
    ],
}
