"""The pytest plugin as a user meets it: test files run by pytest (pytester), in a directory of
their own, with the plugin loaded from its entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "test_with_opencams.py"
# pytest-asyncio (of this suite) would warn about its unset options: not part of a user's run.
STRICT = ("-W", "error", "-p", "no:cacheprovider", "-p", "no:asyncio")


def test_importing_the_plugin_starts_and_imports_nothing() -> None:
    probe = (
        "import sys, threading, warnings\n"
        "warnings.simplefilter('error')\n"
        "import opencams.testing.plugin\n"
        "heavy = [m for m in ('uvicorn', 'starlette', 'sqlalchemy', 'httpx', 'opencams.app',\n"
        "    'opencams.testing.server', 'alibabacloud_cams20200606') if m in sys.modules]\n"
        "print(heavy, threading.active_count())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["[]", "1"], result


def test_a_suite_that_does_not_ask_is_untouched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys, threading

        def test_nothing_started(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("opencams")  # loaded, idle
            assert "opencams.testing.server" not in sys.modules
            assert [t.name for t in threading.enumerate()] == ["MainThread"]
        """
    )
    result = pytester.runpytest_subprocess(*STRICT)
    result.assert_outcomes(passed=1)


def test_the_example_runs_as_a_user_runs_it_in_parallel(pytester: pytest.Pytester) -> None:
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    result = pytester.runpytest_subprocess("-n", "2", *STRICT)
    result.assert_outcomes(passed=15)


def test_tenancies_scopes_and_markers(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from opencams.testing import default_tenancy

        @pytest.fixture
        def cams_tenancy(request):
            if "own" in request.node.name:
                tenancy = default_tenancy()
                tenancy["accounts"][0]["spaces"][0]["id"] = "cams-fixture01"
                return tenancy
            return None
        """
    )
    pytester.makefile(
        ".yaml",
        tenancy="""
        accounts:
          - id: "1000000000000009"
            name: yaml
            chat_groups_allowlisted: true
            access_keys: [{id: LTAI5tYamlRootKey01, secret: yaml-secret-0123456789}]
            spaces:
              - id: cams-yaml01
                name: From YAML
                business_numbers:
                  - {number: "8613700000001", phone_number_id: "120000000000001",
                     waba_id: "220000000000001", access_token: yaml-token}
        """,
    )
    pytester.makepyfile(
        """
        import pytest
        from alibabacloud_cams20200606 import models as m

        SEEN = {}

        def add(client, server, subject):
            body = client.add_chat_group(m.AddChatGroupRequest(
                cust_space_id=server.space, business_number=server.number, subject=subject)).body
            return body.code

        def total(client, server):
            page = m.ListChatGroupRequestPage(index=1, size=10)
            return client.list_chat_group(m.ListChatGroupRequest(
                cust_space_id=server.space, business_number=server.number, page=page)
            ).body.data.total

        def test_default(cams_server, cams_client):
            SEEN["default"] = cams_server.endpoint
            assert (cams_server.space, cams_server.number) == ("cams-test01", "8613800000001")
            assert add(cams_client, cams_server, "left behind") == "OK"

        @pytest.mark.cams_tenancy("tenancy.yaml")
        def test_yaml(cams_server, cams_client):
            SEEN["yaml"] = cams_server.endpoint
            assert (cams_server.access_key_id, cams_server.space) == (
                "LTAI5tYamlRootKey01", "cams-yaml01")
            assert total(cams_client, cams_server) == 0

        def test_own_fixture(cams_server):
            assert cams_server.space == "cams-fixture01"
            SEEN["fixture"] = cams_server.endpoint

        def test_default_again_is_the_same_server_reset(cams_server, cams_client):
            assert cams_server.endpoint == SEEN["default"]
            assert len(set(SEEN.values())) == 3  # two servers more, in one session
            assert total(cams_client, cams_server) == 0

        @pytest.mark.cams_fresh
        def test_fresh(cams_server):
            SEEN["fresh"] = cams_server
            assert cams_server.endpoint not in SEEN.values()

        def test_the_fresh_one_is_gone():
            assert not SEEN["fresh"].running

        @pytest.mark.cams_settings(max_groups_per_number=1)
        @pytest.mark.cams_confirm("manual")
        def test_settings_and_confirmations(cams_server, cams_client, cams_sandbox):
            assert add(cams_client, cams_server, "one") == "OK"
            assert add(cams_client, cams_server, "two") == "LimitExceeded.ChatGroup"
            assert cams_sandbox.confirm_all() == 1

        @pytest.mark.cams_confirm(0.5)
        def test_a_delay(cams_server, cams_client):
            add(cams_client, cams_server, "slow")
            page = m.ListChatGroupRequestPage(index=1, size=10)
            item = cams_client.list_chat_group(m.ListChatGroupRequest(
                cust_space_id=cams_server.space, business_number=cams_server.number, page=page)
            ).body.data.list[0]
            assert item.group_status == "CREATING"

        @pytest.mark.parametrize("cams_signature", ["v1", "v3"])
        def test_signatures(cams_client, cams_server):
            assert total(cams_client, cams_server) == 0

        @pytest.mark.cams_tenancy({"accounts": [{"id": "bad"}]})
        def test_a_bad_tenancy(cams_server):
            pass
        """
    )
    result = pytester.runpytest_subprocess(*STRICT)
    result.assert_outcomes(passed=10, errors=1)
    result.stdout.fnmatch_lines(
        ["opencams test server: the tenancy cannot be provisioned:", "*accounts.0.id: String*"]
    )


def test_a_server_per_test_by_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nopencams_server_scope = function\n")
    pytester.makepyfile(
        """
        SEEN = []

        def test_one(cams_server):
            SEEN.append(cams_server.endpoint)

        def test_two(cams_server):
            assert cams_server.endpoint not in SEEN
        """
    )
    pytester.runpytest_subprocess(*STRICT).assert_outcomes(passed=2)


def test_cams_client_says_how_to_get_the_sdk(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import sys
        sys.modules["alibabacloud_cams20200606.client"] = None  # as if not installed
        """
    )
    pytester.makepyfile(
        """
        def test_needs_the_sdk(cams_client):
            pass

        def test_does_not(cams_server, cams_sandbox):
            assert cams_sandbox.state()["groups"] == []
        """
    )
    result = pytester.runpytest_subprocess(*STRICT)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*pip install alibabacloud-cams20200606*"])
