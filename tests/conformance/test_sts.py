"""STS: the official credentials library's RAM-role provider against opencams over HTTPS (a
throwaway CA from trustme), temporary credentials until they expire, and session policies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from alibabacloud_cams20200606 import models as m
from alibabacloud_cams20200606.client import Client
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.models import Config as CredentialConfig
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config

from tests.conformance.tenancy import (
    KEY_A,
    KEY_NOBODY,
    KEY_READER,
    NUM_LIST,
    ROLE_DEPLOYER,
    SPACE_A1,
    TENANCY,
)
from tests.databases import database_url
from tests.live import LiveServer, live_server, run_cli


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    work: Path = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key, bundle = work / "cert.pem", work / "key.pem", work / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(bundle))
    with (
        database_url("sqlite", work) as url,
        live_server(
            url,
            work / "srv",
            TENANCY,
            tls=(chain, key, bundle),
            OPENCAMS_STS_MIN_DURATION_SECONDS="1",
        ) as live,
    ):
        yield live, bundle


@pytest.fixture
def trusted_ca(tls_server: tuple[LiveServer, Path], monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    server, bundle = tls_server
    # requests honours REQUESTS_CA_BUNDLE; the SDKs' Tea layer builds its TLS context with
    # ssl.create_default_context(), which honours SSL_CERT_FILE.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return server


def cams(server: LiveServer, **credentials: Any) -> Client:
    return Client(
        Config(endpoint=server.endpoint, protocol="HTTPS", region_id="cn-hangzhou", **credentials)
    )


def list_request() -> m.ListChatGroupRequest:
    return m.ListChatGroupRequest(
        cust_space_id=SPACE_A1,
        business_number=NUM_LIST,
        page=m.ListChatGroupRequestPage(index=1, size=5),
    )


def add_request(subject: str) -> m.AddChatGroupRequest:
    return m.AddChatGroupRequest(cust_space_id=SPACE_A1, business_number=NUM_LIST, subject=subject)


def test_credentials_library_ram_role_provider(trusted_ca: LiveServer) -> None:
    credential = CredentialClient(
        CredentialConfig(
            type="ram_role_arn",
            access_key_id=KEY_READER[0],
            access_key_secret=KEY_READER[1],
            role_arn=ROLE_DEPLOYER,
            role_session_name="ci-run",
            role_session_expiration=900,
            sts_endpoint=trusted_ca.endpoint,
        )
    )
    client = cams(trusted_ca, credential=credential)
    assert client.list_chat_group(list_request()).body.code == "OK"
    # The role (full access) may do what the reader itself may not: the reader is refused at
    # the door, the role gets through to the operation (which finds no such group).
    update = m.UpdateChatGroupRequest(
        cust_space_id=SPACE_A1, business_number=NUM_LIST, group_id="NOSUCH", subject="x"
    )
    assert client.update_chat_group(update).body.code == "NotFound.ChatGroup"
    reader = cams(trusted_ca, access_key_id=KEY_READER[0], access_key_secret=KEY_READER[1])
    with pytest.raises(ClientException) as info:
        reader.update_chat_group(update)
    assert info.value.code == "Forbidden.RAM"
    assumed = credential.get_credential()
    assert assumed.access_key_id.startswith("STS.") and assumed.security_token


def assume(server: LiveServer, key: tuple[str, str], *extra: str, check: bool = True) -> Any:
    result = run_cli(
        server.env,
        "sts",
        "assume-role",
        "--access-key-id",
        key[0],
        "--access-key-secret",
        key[1],
        "--role-arn",
        ROLE_DEPLOYER,
        *extra,
        check=check,
    )
    return json.loads(result.stdout) if check else result


@pytest.mark.parametrize("signer", [None, "v2"], ids=["v3", "v1"])
def test_temporary_credentials_work_until_they_expire(
    trusted_ca: LiveServer, signer: str | None
) -> None:
    creds = assume(trusted_ca, KEY_READER, "--duration", "3")
    config: dict[str, Any] = {
        "access_key_id": creds["AccessKeyId"],
        "access_key_secret": creds["AccessKeySecret"],
        "security_token": creds["SecurityToken"],
    }
    client = cams(trusted_ca, **config)
    if signer:
        client = Client(
            Config(
                endpoint=trusted_ca.endpoint, protocol="HTTPS", signature_algorithm=signer, **config
            )
        )
    assert client.list_chat_group(list_request()).body.code == "OK"
    time.sleep(3.2)
    with pytest.raises(ClientException) as info:
        client.list_chat_group(list_request())
    assert info.value.code == "InvalidSecurityToken.Expired"


def test_bad_tokens(trusted_ca: LiveServer) -> None:
    creds = assume(trusted_ca, KEY_READER)
    other = assume(trusted_ca, KEY_READER)
    cases = [
        (creds["SecurityToken"][:-8] + "AAAAAAAA", "InvalidSecurityToken.Malformed"),
        ("not-a-token", "InvalidSecurityToken.Malformed"),
        (other["SecurityToken"], "InvalidSecurityToken.MismatchWithAccessKey"),
    ]
    for token, code in cases:
        client = cams(
            trusted_ca,
            access_key_id=creds["AccessKeyId"],
            access_key_secret=creds["AccessKeySecret"],
            security_token=token,
        )
        with pytest.raises(ClientException) as info:
            client.list_chat_group(list_request())
        assert info.value.code == code


def test_session_policy_can_only_narrow(trusted_ca: LiveServer) -> None:
    narrow = json.dumps(
        {
            "Version": "1",
            "Statement": [{"Effect": "Allow", "Action": "cams:List*", "Resource": "*"}],
        }
    )
    creds = assume(trusted_ca, KEY_READER, "--policy", narrow)
    client = cams(
        trusted_ca,
        access_key_id=creds["AccessKeyId"],
        access_key_secret=creds["AccessKeySecret"],
        security_token=creds["SecurityToken"],
    )
    assert client.list_chat_group(list_request()).body.code == "OK"
    with pytest.raises(ClientException) as info:
        client.update_chat_group(
            m.UpdateChatGroupRequest(
                cust_space_id=SPACE_A1,
                business_number=NUM_LIST,
                group_id="NOSUCH",
                subject="narrowed away",
            )
        )
    assert info.value.code == "Forbidden.RAM"
    assert info.value.access_denied_detail["PolicyType"] == "SessionPolicy"
    assert info.value.access_denied_detail["AuthPrincipalType"] == "AssumedRoleUser"


def test_who_may_assume(trusted_ca: LiveServer) -> None:
    refused = assume(trusted_ca, KEY_NOBODY, check=False)
    assert refused.returncode == 1 and "NoPermission" in refused.stderr
    assert "Credentials" not in refused.stdout
    assert assume(trusted_ca, KEY_A)["AccessKeyId"].startswith("STS.")  # the account's root
    bad_policy = assume(trusted_ca, KEY_READER, "--policy", '{"Version": "2"}', check=False)
    assert "InvalidParameter.PolicyGrammar" in bad_policy.stderr
    too_long = assume(trusted_ca, KEY_READER, "--duration", "7200", check=False)
    assert "InvalidParameter.DurationSeconds" in too_long.stderr
