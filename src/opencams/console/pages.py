"""The console's pages and actions (docs/console.md).

Reads and changes of chat groups are the API's own actions, run through `Endpoint.invoke` with
the signed-in caller: the same validation, RAM check, throttle, handler and audit record as a
signed request. What the API has no action for (the account's spaces and numbers, a group's
operations and webhook events, the audit log) is read from the store for the caller's own account
only; the simulator panel calls the simulator's control API.
"""

from __future__ import annotations

import json
import math
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from opencams.console.simulator import FAILABLE, GROUP_CONTROLS, WEBHOOK_CONTROLS
from opencams.console.web import PREFIX, ConsoleBase, Form, Refused, Visit
from opencams.errors import CamsError
from opencams.names import ACTION_NAMES, API_VERSION, GroupStatus
from opencams.rpc.actions import ACTIONS
from opencams.store import audit as audit_store
from opencams.store import chat_groups, operations, participants, tenancy

# RAM actions of what the API has no action for (docs/console.md#ram).
AUDIT_RAM_ACTION = "actiontrail:LookupEvents"
SIMULATOR_RAM_ACTION = "opencams:ControlSimulator"
AUDIT_PAGE_SIZE = 50
GROUP_PAGE_SIZES = (10, 20, 50, 100)

# The group page's changes: form name -> (CAMS action, parameter it sets from the form).
GROUP_CHANGES: dict[str, tuple[str, str | None]] = {
    "subject": ("UpdateChatGroup", "Subject"),
    "description": ("UpdateChatGroup", "Description"),
    "picture": ("UpdateChatGroup", "ProfilePictureFile"),
    "invite-link": ("AddChatGroupInviteLink", None),
    "revoke-link": ("DeleteChatGroupInviteLink", None),
    "remove": ("DeleteChatGroupParticipants", None),
    "delete": ("DeleteChatGroup", None),
}


def number_url(space: str, number: str) -> str:
    return f"{PREFIX}/spaces/{quote(space, safe='')}/numbers/{quote(number, safe='')}"


def group_url(space: str, number: str, group: str) -> str:
    return f"{number_url(space, number)}/groups/{quote(group, safe='')}"


class Console(ConsoleBase):
    def routes(self) -> list[BaseRoute]:
        numbers = f"{PREFIX}/spaces/{{space}}/numbers/{{number}}"
        group = f"{numbers}/groups/{{group}}"
        return [
            Route(PREFIX, _to_console, methods=["GET"]),
            Route(f"{PREFIX}/", self.page(self.overview), methods=["GET"]),
            *self.base_routes(),
            Route(numbers, self.page(self.number_page), methods=["GET"]),
            Route(f"{numbers}/groups", self.action(self.create_group), methods=["POST"]),
            Route(group, self.page(self.group_page), methods=["GET"]),
            Route(f"{group}/sim/{{control}}", self.action(self.group_control), methods=["POST"]),
            Route(f"{group}/{{change}}", self.action(self.group_change), methods=["POST"]),
            Route(f"{PREFIX}/audit", self.page(self.audit_page), methods=["GET"]),
            Route(f"{PREFIX}/simulator", self.page(self.simulator_page), methods=["GET"]),
            Route(
                f"{PREFIX}/simulator/{{control:path}}",
                self.action(self.simulator_control),
                methods=["POST"],
            ),
        ]

    # --- overview ----------------------------------------------------------------------------

    async def overview(self, visit: Visit) -> Response:
        account_id = visit.caller.account_id
        async with self.store.read() as tx:
            name = await tenancy.account_name(tx, account_id)
            spaces = await tenancy.spaces_of_account(tx, account_id)
            numbers = await tenancy.numbers_of_account(tx, account_id)
        by_space: dict[str, list[str]] = {space_id: [] for space_id, _ in spaces}
        for record in numbers:
            by_space.setdefault(record.space_id, []).append(record.number)
        permissions = []
        for action_name in ACTION_NAMES:
            action = ACTIONS.get((API_VERSION, action_name))
            if action is not None and action.ram_action is not None:
                allowed = await self.endpoint.may(visit.caller, action.ram_action, visit.where)
                permissions.append((action.ram_action, allowed))
        for extra in (AUDIT_RAM_ACTION, SIMULATOR_RAM_ACTION):
            permissions.append((extra, await self.endpoint.may(visit.caller, extra, visit.where)))
        return self.render(
            visit,
            "overview.html",
            account_name=name or account_id,
            spaces=[(space_id, space_name, by_space[space_id]) for space_id, space_name in spaces],
            number_url=number_url,
            permissions=permissions,
        )

    # --- a number's groups -------------------------------------------------------------------

    async def number_page(self, visit: Visit) -> Response:
        space, number = visit.request.path_params["space"], visit.request.path_params["number"]
        query = visit.request.query_params
        index = _positive(query.get("page"), 1)
        size = _positive(query.get("size"), 20)
        filters = {
            name: query.get(name, "").strip()
            for name in ("GroupStatus", "Subject", "ChannelType", "GroupType", "GroupLink")
        }
        values = [
            ("CustSpaceId", space),
            ("BusinessNumber", number),
            ("Page", json.dumps({"Index": index, "Size": size})),
            *((name, value) for name, value in filters.items() if value),
        ]
        answer = await self.endpoint.invoke(visit.caller, "ListChatGroup", values, visit.where)
        data = answer.fields.get("Data", {}) if answer.ok else {}
        total = int(data.get("Total", 0))
        pages = max(1, math.ceil(total / size))

        def page_link(to: int) -> str:
            kept = {k: v for k, v in filters.items() if v}
            return "?" + urlencode({**kept, "page": to, "size": size})

        return self.render(
            visit,
            "number.html",
            status=_status(answer.error),
            space=space,
            number=number,
            filters=filters,
            statuses=[s.value for s in GroupStatus],
            error=answer.error,
            request_id=answer.request_id,
            groups=data.get("List", []),
            total=total,
            index=index,
            size=size,
            sizes=GROUP_PAGE_SIZES,
            pages=pages,
            prev_link=page_link(index - 1) if index > 1 else None,
            next_link=page_link(index + 1) if index < pages else None,
            may_create=await self.endpoint.may(visit.caller, "cams:AddChatGroup", visit.where),
            group_url=lambda g: group_url(space, number, g),
            number_url=number_url(space, number),
        )

    async def create_group(self, visit: Visit, form: Form) -> Response:
        space, number = visit.request.path_params["space"], visit.request.path_params["number"]
        values = [("CustSpaceId", space), ("BusinessNumber", number)]
        values.append(("Subject", form.get("Subject", "")))
        if form.get("Description"):
            values.append(("Description", form["Description"]))
        answer = await self.endpoint.invoke(visit.caller, "AddChatGroup", values, visit.where)
        if answer.error is not None:
            return self._refusal(visit, answer.error, answer.request_id, number_url(space, number))
        group_id = str(answer.fields["GroupId"])
        return self.done(
            visit,
            group_url(space, number, group_id),
            f"AddChatGroup: group {group_id} asked of Meta (UniqueCode "
            f"{answer.fields['UniqueCode']}, RequestId {answer.request_id}).",
        )

    # --- one group ---------------------------------------------------------------------------

    async def group_page(self, visit: Visit) -> Response:
        params = visit.request.path_params
        space, number, group_id = params["space"], params["number"], params["group"]
        ref = [("CustSpaceId", space), ("BusinessNumber", number), ("GroupId", group_id)]
        answer = await self.endpoint.invoke(
            visit.caller,
            "ListChatGroupParticipants",
            [*ref, ("Page", json.dumps({"Index": 1, "Size": 100}))],
            visit.where,
        )
        if answer.error is not None:
            return self._refusal(visit, answer.error, answer.request_id, number_url(space, number))
        record = await self.store.number_in_space(visit.caller.account_id, space, number)
        group = None
        if record is not None:
            async with self.store.read() as tx:
                group = await chat_groups.group_of_number(tx, group_id, record.id)
        if group is None:
            raise Refused(404, f"No group {group_id} on this number.")
        async with self.store.read() as tx:
            ops = await operations.operations_of_group(tx, group.id)
            events = (
                await operations.events_of_group(
                    tx,
                    group.meta_group_id or "",
                    [op["meta_request_id"] for op in ops if op["meta_request_id"]],
                )
                if group.meta_group_id or ops
                else []
            )
            requests = await participants.join_request_history(tx, group.id)
        sim_group: dict[str, Any] | None = None
        queued: list[dict[str, Any]] = []
        if self.simulator is not None and group.meta_group_id:
            state = await self.simulator.state()
            sim_group = next(
                (g for g in state.get("groups", []) if g["group_id"] == group.meta_group_id), None
            )
            queued = [
                item
                for item in state.get("webhooks", {}).get("queue", [])
                if item.get("group_id") == group.meta_group_id
            ]
        may = {
            change: await self.endpoint.may(visit.caller, f"cams:{action}", visit.where)
            for change, (action, _) in GROUP_CHANGES.items()
        }
        may_simulate = self.simulator is not None and await self.endpoint.may(
            visit.caller, SIMULATOR_RAM_ACTION, visit.where
        )
        return self.render(
            visit,
            "group.html",
            space=space,
            number=number,
            group=group,
            members=[item["ParticipantNumber"] for item in answer.fields["Data"]["List"]],
            member_total=answer.fields["Data"]["Total"],
            operations=ops,
            pending=[op for op in ops if op["state"] == "pending"],
            events=events,
            join_requests=requests,
            sim_group=sim_group,
            queued=queued,
            may=may,
            may_simulate=may_simulate,
            controls=GROUP_CONTROLS,
            group_url=group_url(space, number, group.id),
            number_url=number_url(space, number),
        )

    async def group_change(self, visit: Visit, form: Form) -> Response:
        params = visit.request.path_params
        space, number, group_id = params["space"], params["number"], params["group"]
        change = params["change"]
        if change not in GROUP_CHANGES:
            raise Refused(404, f"No such change of a group: {change}.")
        action, field = GROUP_CHANGES[change]
        values = [("CustSpaceId", space), ("BusinessNumber", number), ("GroupId", group_id)]
        if field is not None:
            values.append((field, form.get(field, "")))
        if change == "remove":
            numbers = [n for n in form.get("participants", "").replace(",", " ").split() if n]
            values.append(("List", json.dumps([{"ParticipantNumber": n} for n in numbers])))
        answer = await self.endpoint.invoke(visit.caller, action, values, visit.where)
        back = group_url(space, number, group_id)
        if answer.error is not None:
            return self._refusal(visit, answer.error, answer.request_id, back)
        if change == "delete":
            back = number_url(space, number)
        detail = f" {answer.fields['InviteLink']}" if "InviteLink" in answer.fields else ""
        return self.done(
            visit, back, f"{action}: accepted{detail} (RequestId {answer.request_id})."
        )

    async def group_control(self, visit: Visit, form: Form) -> Response:
        params = visit.request.path_params
        space, number, group_id = params["space"], params["number"], params["group"]
        control = params["control"]
        back = group_url(space, number, group_id)
        if self.simulator is None or control not in GROUP_CONTROLS:
            raise Refused(404, "No such simulator control here.")
        await self._require_simulator(visit)
        record = await self.store.number_in_space(visit.caller.account_id, space, number)
        group = None
        if record is not None:
            async with self.store.read() as tx:
                group = await chat_groups.group_of_number(tx, group_id, record.id)
        if group is None or group.meta_group_id is None:
            raise Refused(404, f"Group {group_id} is not known to Meta (yet).")
        body: dict[str, Any] = {"group_id": group.meta_group_id}
        if control in ("tap-link", "leave", "cancel-request"):
            body["wa_id"] = form.get("wa_id", "").strip()
        if control == "tap-link":
            del body["group_id"]
            body["invite_link"] = group.invite_link or ""
        if control == "join-approval":
            body["required"] = form.get("required") == "true"
        return await self._simulate(visit, control, body, back)

    # --- the simulator -----------------------------------------------------------------------

    async def simulator_page(self, visit: Visit) -> Response:
        if self.simulator is None:
            raise Refused(404, "The simulator is not mounted on this server.")
        state = await self.simulator.state()
        return self.render(
            visit,
            "simulator.html",
            state=state,
            webhooks=state.get("webhooks", {}),
            may_simulate=await self.endpoint.may(visit.caller, SIMULATOR_RAM_ACTION, visit.where),
            controls=WEBHOOK_CONTROLS,
            failable=FAILABLE,
        )

    async def simulator_control(self, visit: Visit, form: Form) -> Response:
        control = visit.request.path_params["control"]
        if self.simulator is None or control not in (*WEBHOOK_CONTROLS, "fail-next"):
            raise Refused(404, "No such simulator control.")
        await self._require_simulator(visit)
        body: dict[str, Any] = {}
        if control == "fail-next":
            code = form.get("code", "").strip()
            if not code.isdigit():
                raise Refused(400, "The Meta error code is a positive whole number.")
            body = {
                "operation": form.get("operation", ""),
                "code": int(code),
                "mode": form.get("mode", "sync"),
            }
        return await self._simulate(visit, control, body, f"{PREFIX}/simulator")

    async def _require_simulator(self, visit: Visit) -> None:
        try:
            await self.endpoint.authorizer.check(
                visit.caller, SIMULATOR_RAM_ACTION, visit.where.ip, visit.where.secure
            )
        except CamsError as exc:
            self._audit(visit, f"Simulator:{visit.request.path_params.get('control')}", exc.code)
            raise

    async def _simulate(
        self, visit: Visit, control: str, body: dict[str, Any], back: str
    ) -> Response:
        assert self.simulator is not None
        answer = await self.simulator.call(control, body)
        code = "OK" if answer.ok else f"Simulator.{answer.status}"
        self._audit(visit, f"Simulator:{control}", code)
        if not answer.ok:
            return self.done(visit, back, f"{control}: refused: {answer.error}", "error")
        shown = ", ".join(f"{k}={v}" for k, v in answer.body.items() if not isinstance(v, list))
        return self.done(visit, back, f"{control}: done ({shown}).")

    def _audit(self, visit: Visit, action: str, code: str) -> None:
        caller = visit.caller
        self.endpoint.audit.record(
            request_id=f"console-{secrets.token_hex(8)}",
            account_id=caller.account_id,
            principal_type=caller.principal_type,
            principal=caller.principal,
            access_key_id=caller.access_key_id,
            action=action,
            decision="allow" if code == "OK" or code.startswith("Simulator.") else "deny",
            statement="console",
            code=code,
            source_ip=visit.where.ip,
        )

    # --- the audit log -----------------------------------------------------------------------

    async def audit_page(self, visit: Visit) -> Response:
        await self.endpoint.authorizer.check(
            visit.caller, AUDIT_RAM_ACTION, visit.where.ip, visit.where.secure
        )
        query = visit.request.query_params
        filters = {
            name: query.get(name, "").strip()
            for name in ("principal", "action", "code", "since", "until")
        }
        index = _positive(query.get("page"), 1)
        rows = []
        async with self.store.read() as tx:
            rows = await audit_store.audit_rows(
                tx,
                account_id=visit.caller.account_id,
                principal=filters["principal"] or None,
                action=filters["action"] or None,
                code=filters["code"] or None,
                since_ms=_moment(filters["since"], "since"),
                until_ms=_moment(filters["until"], "until"),
                limit=AUDIT_PAGE_SIZE + 1,
                offset=(index - 1) * AUDIT_PAGE_SIZE,
            )
        kept = {k: v for k, v in filters.items() if v}
        return self.render(
            visit,
            "audit.html",
            filters=filters,
            rows=rows[:AUDIT_PAGE_SIZE],
            index=index,
            prev_link="?" + urlencode({**kept, "page": index - 1}) if index > 1 else None,
            next_link=(
                "?" + urlencode({**kept, "page": index + 1})
                if len(rows) > AUDIT_PAGE_SIZE
                else None
            ),
        )

    def _refusal(self, visit: Visit, error: CamsError, request_id: str, back: str) -> Response:
        return self.render(
            visit,
            "error.html",
            status=_status(error),
            code=error.code,
            message=error.message,
            request_id=request_id,
            back=back,
        )


async def _to_console(_: Any) -> Response:
    return RedirectResponse(f"{PREFIX}/", 307)


def _status(error: CamsError | None) -> int:
    """A refused action's page: the error's own HTTP status, or 400 for a business error
    (which the API answers with HTTP 200 and Success=false)."""
    if error is None:
        return 200
    return error.status if error.status >= 400 else 400


def _positive(value: str | None, default: int) -> int:
    """A page number or size from a query: what the user typed, passed on as given (the API
    judges it) unless it is no number at all."""
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise Refused(400, f"{value!r} is not a whole number.") from None


def _moment(value: str, name: str) -> int | None:
    """A time filter (`YYYY-MM-DDTHH:MM`, UTC, as an HTML datetime-local input sends it)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Refused(
            400, f"{name}: {value!r} is not a date and time (YYYY-MM-DDTHH:MM)."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
