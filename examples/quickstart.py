"""Create a WhatsApp group with the official SDK and watch it become ACTIVE.

Run `make run` in one terminal, then `.venv/bin/python examples/quickstart.py` in another.
"""

import time

from alibabacloud_cams20200606 import models
from alibabacloud_cams20200606.client import Client
from alibabacloud_tea_openapi.utils_models import Config

client = Client(
    Config(
        access_key_id="LTAI5tDemoRootKey01",  # printed by `make run`
        access_key_secret="DemoSecret0123456789abcdefXYZ",
        endpoint="127.0.0.1:8080",
        protocol="HTTP",
    )
)
SPACE, NUMBER = "cams-demo01", "8613800000001"

created = client.add_chat_group(
    models.AddChatGroupRequest(
        cust_space_id=SPACE, business_number=NUMBER, subject="Support team", description="Hi!"
    )
)
print("AddChatGroup:", created.body.code, "UniqueCode", created.body.unique_code)

for _ in range(20):
    listed = client.list_chat_group(
        models.ListChatGroupRequest(
            cust_space_id=SPACE,
            business_number=NUMBER,
            subject="Support team",
            page=models.ListChatGroupRequestPage(index=1, size=20),
        )
    )
    newest = listed.body.data.list[0]
    print("ListChatGroup:", newest.group_id, newest.group_status, newest.invite_link)
    if newest.group_status == "ACTIVE":
        break
    time.sleep(0.5)
