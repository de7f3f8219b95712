"""The shared tenancy: its accounts, access keys, spaces and business numbers.

The conformance `server`, the scale-out cluster and many tests' own servers are provisioned with
TENANCY. Account A (acme) has RAM users, custom policies, a user group and a role; B (beta) has a
user whose policy names A's resources; C (gamma) is not allowlisted for chat groups; D (delta) is
throttled at 2 ListChatGroup calls a second. Each test area creates its groups on a number of its
own in space A1 (NUM_LOOP, NUM_LIST, …), so that tests sharing a server never see each other's.
"""

from __future__ import annotations

from typing import Any

ACCOUNT_A = "1000000000000001"
KEY_A = ("LTAI5tAcmeRootKey01", "acme-root-secret-0123456789")
KEY_A_OFF = ("LTAI5tAcmeRootOff01", "acme-off-secret-0123456789")
KEY_B = ("LTAI5tBetaRootKey01", "beta-root-secret-0123456789")
KEY_C = ("LTAI5tGammaRootKy01", "gamma-root-secret-0123456789")
KEY_D = ("LTAI5tDeltaRootKy01", "delta-root-secret-0123456789")  # an account throttled at 2/s
SPACE_A1, SPACE_A2, SPACE_B1, SPACE_C1 = "cams-acme01", "cams-acme02", "cams-beta01", "cams-gamma1"
# Numbers of space A1, one per test area so tests do not see each other's groups.
NUM_LOOP, NUM_LIST, NUM_BAD, NUM_LIMIT, NUM_FAIL = (
    "8613800000001",
    "8613800000002",
    "8613800000003",
    "8613800000004",
    "8613800000005",
)
NUM_LIFE, NUM_MEMBERS, NUM_SYNC = "8613800000006", "8613800000007", "8613800000008"
NUM_JOIN = "8613800000009"
NUM_MESSAGES = "8613800000010"
NUM_CALLBACKS = "8613800000011"
NUM_A2 = "8613800000021"
NUM_B1 = "8613800000031"
NUM_C1 = "8613800000041"
KEY_READER = ("LTAI5tAcmeReader001", "reader-secret-0123456789")
KEY_OFFICE = ("LTAI5tAcmeOffice001", "office-secret-0123456789")
KEY_OPERATOR = ("LTAI5tAcmeOperat001", "operator-secret-0123456789")
KEY_NOBODY = ("LTAI5tAcmeNobody001", "nobody-secret-0123456789")
KEY_INTRUDER = ("LTAI5tBetaIntrud001", "intruder-secret-0123456789")
ROLE_DEPLOYER = "acs:ram::1000000000000001:role/deployer"
APP_SECRET = "conformance-app-secret-0123456789"
CALLBACK_SECRET_A = "acme-callback-secret-0123456789"
VERIFY_TOKEN = "conformance-verify-token"


def _number(number: str, pnid: str) -> dict[str, str]:
    return {
        "number": number,
        "phone_number_id": pnid,
        "waba_id": "2" + pnid[1:],
        "access_token": f"token-{pnid}",
    }


TENANCY: dict[str, Any] = {
    "whatsapp": {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN},
    "accounts": [
        {
            "id": "1000000000000004",
            "name": "delta",
            "chat_groups_allowlisted": True,
            "access_keys": [{"id": KEY_D[0], "secret": KEY_D[1]}],
            "throttling": {"ListChatGroup": 2},
        },
        {
            "id": ACCOUNT_A,
            "name": "acme",
            "chat_groups_allowlisted": True,
            # Test suites burst far beyond the vendor's 50/s; throttling has tests of its own.
            "throttling": {"*": 100_000},
            "callback_secret": CALLBACK_SECRET_A,
            "policies": [
                {
                    "name": "groups-readonly-office",
                    "document": {
                        "Version": "1",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "cams:List*",
                                "Resource": "*",
                                "Condition": {"IpAddress": {"acs:SourceIp": ["127.0.0.1/32"]}},
                            }
                        ],
                    },
                },
                {
                    "name": "no-deletes",
                    "document": {
                        "Version": "1",
                        "Statement": [
                            {"Effect": "Deny", "Action": "cams:Delete*", "Resource": "*"}
                        ],
                    },
                },
            ],
            "ram_users": [
                {
                    "name": "reader",
                    "access_keys": [{"id": KEY_READER[0], "secret": KEY_READER[1]}],
                    "policies": ["AliyunCamsReadOnlyAccess"],
                },
                {
                    "name": "office",
                    "access_keys": [{"id": KEY_OFFICE[0], "secret": KEY_OFFICE[1]}],
                    "user_groups": ["ops"],
                },
                {
                    "name": "operator",
                    "access_keys": [{"id": KEY_OPERATOR[0], "secret": KEY_OPERATOR[1]}],
                    "policies": ["AliyunCamsFullAccess", "no-deletes"],
                },
                {"name": "nobody", "access_keys": [{"id": KEY_NOBODY[0], "secret": KEY_NOBODY[1]}]},
            ],
            "user_groups": [{"name": "ops", "policies": ["groups-readonly-office"]}],
            "roles": [
                {
                    "name": "deployer",
                    "trusted_users": ["reader"],
                    "policies": ["AliyunCamsFullAccess"],
                    "max_session_duration": 3600,
                }
            ],
            "access_keys": [
                {"id": KEY_A[0], "secret": KEY_A[1]},
                {"id": KEY_A_OFF[0], "secret": KEY_A_OFF[1], "status": "Inactive"},
            ],
            "spaces": [
                {
                    "id": SPACE_A1,
                    "name": "Acme one",
                    "business_numbers": [
                        _number(n, f"11000000000000{i}")
                        for i, n in enumerate(
                            [
                                NUM_LOOP,
                                NUM_LIST,
                                NUM_BAD,
                                NUM_LIMIT,
                                NUM_FAIL,
                                NUM_LIFE,
                                NUM_MEMBERS,
                                NUM_SYNC,
                                NUM_JOIN,
                                NUM_MESSAGES,
                                NUM_CALLBACKS,
                            ],
                            start=1,
                        )
                    ],
                },
                {
                    "id": SPACE_A2,
                    "name": "Acme two",
                    "business_numbers": [_number(NUM_A2, "110000000000021")],
                },
            ],
        },
        {
            "id": "1000000000000002",
            "name": "beta",
            "chat_groups_allowlisted": True,
            "throttling": {"*": 100_000},
            # A user whose policy names account A's resources: it must reach nothing of A's.
            "policies": [
                {
                    "name": "everything-of-acme",
                    "document": {
                        "Version": "1",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "cams:*",
                                "Resource": ["*", "acs:cams:*:1000000000000001:*"],
                            }
                        ],
                    },
                }
            ],
            "ram_users": [
                {
                    "name": "intruder",
                    "access_keys": [{"id": KEY_INTRUDER[0], "secret": KEY_INTRUDER[1]}],
                    "policies": ["everything-of-acme"],
                }
            ],
            "access_keys": [{"id": KEY_B[0], "secret": KEY_B[1]}],
            "spaces": [
                {
                    "id": SPACE_B1,
                    "name": "Beta",
                    "business_numbers": [_number(NUM_B1, "110000000000031")],
                }
            ],
        },
        {
            "id": "1000000000000003",
            "name": "gamma",
            "chat_groups_allowlisted": False,
            "access_keys": [{"id": KEY_C[0], "secret": KEY_C[1]}],
            "spaces": [
                {
                    "id": SPACE_C1,
                    "name": "Gamma",
                    "business_numbers": [_number(NUM_C1, "110000000000041")],
                }
            ],
        },
    ],
}
