"""Every exception opencams raises on purpose, in one tree. This module imports nothing of the
project: any layer may raise or catch what it names.

    OpenCamsError
    ├── CamsError                      a wire answer: `code`, HTTP `status`, message `template`
    │   ├── GatewayError               HTTP 4xx/5xx: {RequestId, HostId, Code, Message, Recommend}
    │   │   ├── MissingParameter, InvalidParameter, InvalidVersion, InvalidActionNotFound
    │   │   ├── InvalidRequest (unreadable HTTP), UnsupportedHTTPMethod (405)
    │   │   ├── IncompleteSignature, SignatureDoesNotMatch
    │   │   ├── InvalidAccessKeyIdNotFound, InvalidAccessKeyIdInactive
    │   │   ├── InvalidTimeStampExpired, InvalidTimeStampFormat, SignatureNonceUsed
    │   │   ├── InvalidSecurityTokenMismatch, InvalidSecurityTokenExpired,
    │   │   │   InvalidSecurityTokenMalformed
    │   │   ├── ForbiddenRAM (403 + AccessDeniedDetail), ThrottlingUser (429 + x-acs-retry-after)
    │   │   ├── STS: EntityNotExistRole, NoPermission, InvalidRoleArn, InvalidDuration,
    │   │   │        PolicyGrammar, InvalidRoleSessionName
    │   │   └── InternalError, ServiceUnavailable
    │   └── BusinessError              HTTP 200, body {RequestId, Code, Message, Success: false}
    │       ├── PageInvalid, ChannelTypeNotSupport, GroupStatusNotSupport, PhoneNumberError
    │       ├── SubjectInvalid, DescriptionInvalid, ProfilePictureInvalid, ParticipantListInvalid
    │       ├── JoinApprovalModeInvalid, JoinRequestListInvalid
    │       ├── NoAuth, NotInAllowlist, ChatGroupNotFound, ParticipantNotFound
    │       ├── ChatGroupInvalidStatus, ChatGroupLimitExceeded
    │       ├── CallbackUrlInvalid, QueueDeliveryNotSupported, JoinApprovalModeInvalid,
    │       │   JoinRequestListInvalid
    │       ├── ChannelNotEligible, ChannelThrottled, ChannelUnavailable, ChannelRejected
    │       └── per join request (in Results, not raised): JoinRequestNotFound,
    │           ParticipantLimitExceeded, RecipientNotEligible
    │       └── messages: RecipientTypeNotSupport, SendTypeNotSupport, MessageTypeNotEmpty,
    │           MessageTypeNotSupport, ContentNotEmpty, ContentError, TextNotEmpty,
    │           LinkNotEmpty, TemplateCodeNotEmpty, LanguageNotEmpty, TemplateParamsInvalid,
    │           MessageNotFound, ChatGroupNoMembers, MessageFilterInvalid, SendOutcomeUnknown
    ├── StoreError                     the database failed (store translates driver errors)
    │   ├── StoreUnavailable           unreachable, locked, restarting: a 503, retry later
    │   ├── StoreRejected              a value it cannot hold: a 400
    │   └── StoreConflict              a unique key taken by a concurrent writer
    ├── GraphError                     a Graph API call failed (`category`: what the domain maps)
    │   └── CircuitOpen                calls to Graph are paused after repeated failures
    ├── FetchRefused                   a caller-chosen URL that may not or could not be fetched
    │   └── PictureUnusable            a profile picture URL that cannot be used (`reason`)
    ├── WebhookRejected                a Meta delivery that is not authentic or not parseable
    ├── NotJson                        a JSON-form complex parameter that is not JSON
    ├── PolicyError (ValueError)       a malformed RAM policy document, with its location
    ├── SetupError                     what stops a command before it serves anything
    │   ├── ConfigError, SchemaError, SecretKeyError
    │   ├── ProvisionError             a provisioning file that cannot be applied (`problems`)
    │   └── SeedError                  a bulk seeding plan that cannot be carried out (store.seed)
    └── SimulatorError                 the built-in Meta simulator's own refusals (sandbox.errors)
        ├── MetaErrorAnswer            a Graph error answer of the simulator (code, HTTP status)
        ├── ControlRefused             a test control it refused (e.g. tapping a full group's link)
        └── SandboxError               the same refusal as a test sees it (opencams.testing)

Wire errors follow the official SDK: it raises on 4xx/5xx and returns 2xx bodies as responses
(docs/errors.md lists every code with its cause). Foreign exceptions (sqlite3, psycopg, httpx)
are translated where they arise (store, channel) and never leave those packages.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal


class OpenCamsError(Exception):
    """The root of every exception opencams raises on purpose."""


class CamsError(OpenCamsError):
    code: ClassVar[str] = "InternalError"
    status: ClassVar[int] = 500
    template: ClassVar[str] = "{detail}"

    def __init__(self, detail: str = "", **fields: Any) -> None:
        self.detail = detail
        self.fields = fields
        # Extra members of the error body (AccessDeniedDetail) and response headers.
        self.body_extra: dict[str, Any] = {}
        self.headers: dict[str, str] = {}
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return self.template.format(detail=self.detail, **self.fields)


class GatewayError(CamsError):
    """The request never reached the operation."""


class BusinessError(CamsError):
    """The operation ran and refused; HTTP 200 with Success=false."""

    status: ClassVar[int] = 200


# --- gateway --------------------------------------------------------------------------------


class MissingParameter(GatewayError):
    code = "MissingParameter"
    status = 400
    template = (
        'The input parameter "{name}" that is mandatory for processing this request is not '
        "supplied."
    )

    def __init__(self, name: str) -> None:
        super().__init__(name=name)


class InvalidParameter(GatewayError):
    code = "InvalidParameter"
    status = 400
    template = 'The specified parameter "{name}" is not valid.{detail}'

    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__(f" {detail}" if detail else "", name=name)


class InvalidVersion(GatewayError):
    code = "InvalidVersion"
    status = 400
    template = "Specified parameter Version is not valid."


class InvalidActionNotFound(GatewayError):
    code = "InvalidAction.NotFound"
    status = 404
    template = "Specified api is not found, please check your url and method."


class IncompleteSignature(GatewayError):
    code = "IncompleteSignature"
    status = 400
    template = "The request signature does not conform to Aliyun standards. {detail}"


class SignatureDoesNotMatch(GatewayError):
    code = "SignatureDoesNotMatch"
    status = 400
    template = (
        "Specified signature is not matched with our calculation. server string to sign is:{detail}"
    )


class InvalidAccessKeyIdNotFound(GatewayError):
    code = "InvalidAccessKeyId.NotFound"
    status = 404
    template = "Specified access key is not found."


class InvalidAccessKeyIdInactive(GatewayError):
    code = "InvalidAccessKeyId.Inactive"
    status = 400
    template = "Specified access key is disabled."


class InvalidTimeStampExpired(GatewayError):
    code = "InvalidTimeStamp.Expired"
    status = 400
    template = "Specified time stamp or date value is expired.{detail}"


class InvalidTimeStampFormat(GatewayError):
    code = "InvalidTimeStamp.Format"
    status = 400
    template = "Specified time stamp or date value is not well formatted."


class SignatureNonceUsed(GatewayError):
    code = "SignatureNonceUsed"
    status = 400
    template = "Specified signature nonce was used already."


class InvalidRequest(GatewayError):
    """Not HTTP that can be read (a bad chunk size, garbage): answered by the HTTP layer."""

    code = "InvalidRequest"
    status = 400
    template = "The request is not well-formed HTTP{detail}."


class UnsupportedHTTPMethod(GatewayError):
    code = "UnsupportedHTTPMethod"
    status = 405
    template = "The HTTP method {method} is not supported here: use {allowed}."

    def __init__(self, method: str, allowed: str = "GET, POST") -> None:
        super().__init__(method=method, allowed=" or ".join(allowed.split(", ")))
        self.headers = {"allow": allowed}


class InternalError(GatewayError):
    code = "InternalError"
    status = 500
    template = "The request processing has failed due to some unknown error, exception or failure."


class ServiceUnavailable(GatewayError):
    code = "ServiceUnavailable"
    status = 503
    template = "The request has failed due to a temporary failure of the server."


# --- business -------------------------------------------------------------------------------


class PageInvalid(BusinessError):
    code = "InvalidParameter.PageInvalid"
    template = "The Page parameter format is invalid: {detail}"


class ChannelTypeNotSupport(BusinessError):
    code = "InvalidParameter.ChannelTypeNotSupport"
    template = "The channel type is not supported: {detail}"


class GroupStatusNotSupport(BusinessError):
    code = "InvalidParameter.GroupStatusNotSupport"
    template = "The group status is not supported: {detail}"


class PhoneNumberError(BusinessError):
    code = "InvalidParameter.PhoneNumberError"
    template = "The phone number is invalid: {detail}"


class SubjectInvalid(BusinessError):
    code = "InvalidParameter.SubjectInvalid"
    template = "The group subject is invalid: {detail}"


class DescriptionInvalid(BusinessError):
    code = "InvalidParameter.DescriptionInvalid"
    template = "The group description is invalid: {detail}"


class ProfilePictureInvalid(BusinessError):
    code = "InvalidParameter.ProfilePictureInvalid"
    template = "The profile picture is not acceptable: {detail}"


class ParticipantListInvalid(BusinessError):
    code = "InvalidParameter.ParticipantListInvalid"
    template = "The participant List is invalid: {detail}"


class CallbackUrlInvalid(BusinessError):
    code = "InvalidParameter.CallbackUrl"
    template = "The callback URL is not acceptable: {detail}"


class QueueDeliveryNotSupported(BusinessError):
    code = "NotSupported.QueueDelivery"
    template = (
        "Receipts by message queue (QueueFlag=Y) are not offered by this server; receive them "
        "over HTTP (HttpFlag=Y and a callback URL)."
    )


class JoinApprovalModeInvalid(BusinessError):
    code = "InvalidParameter.JoinApprovalModeInvalid"
    template = "The JoinApprovalMode is invalid: {detail}"


class JoinRequestListInvalid(BusinessError):
    code = "InvalidParameter.JoinRequestListInvalid"
    template = "The JoinRequestIds parameter is invalid: {detail}"


class NoAuth(BusinessError):
    code = "Authentication.NoAuth"
    # Deliberately says neither whether the space or the number was the miss (docs/errors.md).
    template = "You are not authorized to operate on this space or business number."


class NotInAllowlist(BusinessError):
    code = "Forbidden.NotInAllowlist"
    template = (
        "The chat-group API is a beta feature; this account is not on its allowlist. "
        "Ask your administrator to allowlist the account."
    )


class ChatGroupNotFound(BusinessError):
    code = "NotFound.ChatGroup"
    template = "The chat group does not exist."


class ParticipantNotFound(BusinessError):
    code = "NotFound.Participant"
    template = "Not a member of the group: {detail}"


class ChatGroupInvalidStatus(BusinessError):
    code = "InvalidStatus.ChatGroup"
    template = "The group is {status}; {detail}"


class ChatGroupLimitExceeded(BusinessError):
    code = "LimitExceeded.ChatGroup"
    template = "The business number already has {limit} live groups, the maximum."


class ChannelNotEligible(BusinessError):
    code = "ChannelError.NotEligible"
    template = "WhatsApp says this number may not use groups: {detail}"


class ChannelThrottled(BusinessError):
    code = "ChannelError.Throttled"
    template = "WhatsApp rate limit reached, try again later: {detail}"


class ChannelUnavailable(BusinessError):
    code = "ChannelError.Unavailable"
    template = "WhatsApp could not be reached: {detail}"


class ChannelRejected(BusinessError):
    code = "ChannelError.Rejected"
    template = "WhatsApp rejected the request: {detail}"


# Outcomes of one join request inside a successful Approve/RejectChatGroupJoinRequests answer
# (`Results[].Code`): never raised, named here so that every code opencams answers has a home.


class JoinRequestNotFound(BusinessError):
    code = "NotFound.JoinRequest"
    template = "The join request is not pending in this group: {detail}"


class ParticipantLimitExceeded(BusinessError):
    code = "LimitExceeded.Participant"
    template = "The group is full; WhatsApp cannot add another participant: {detail}"


class RecipientNotEligible(BusinessError):
    code = "ChannelError.RecipientNotEligible"
    template = "WhatsApp cannot add this user to a group: {detail}"


# --- group messages (docs/messages.md) ---------------------------------------------------------


class RecipientTypeNotSupport(BusinessError):
    code = "InvalidParameter.RecipientTypeNotSupport"
    template = "{detail}"


class SendTypeNotSupport(BusinessError):
    code = "InvalidParameter.TypeNotSupport"
    template = "Type must be message or template: {detail}"


class MessageTypeNotEmpty(BusinessError):
    code = "InvalidParameter.MessageTypeNotEmpty"
    template = "MessageType is required when Type is message."


class MessageTypeNotSupport(BusinessError):
    code = "InvalidParameter.MessageTypeNotSupport"
    template = "{detail}"


class ContentNotEmpty(BusinessError):
    code = "InvalidParameter.ContentNotEmpty"
    template = "Content is required when Type is message."


class ContentError(BusinessError):
    code = "InvalidParameter.ContentError"
    template = "The Content is not acceptable: {detail}"


class TextNotEmpty(BusinessError):
    code = "InvalidParameter.TextNotEmpty"
    template = "A text message needs a non-empty text in its Content."


class LinkNotEmpty(BusinessError):
    code = "InvalidParameter.LinkNotEmpty"
    template = "A {kind} message needs a link (or a Meta media id) in its Content."


class TemplateCodeNotEmpty(BusinessError):
    code = "InvalidParameter.TemplateCodeNotEmpty"
    template = "TemplateCode is required when Type is template."


class LanguageNotEmpty(BusinessError):
    code = "InvalidParameter.LanguageNotEmpty"
    template = "Language is required when Type is template."


class TemplateParamsInvalid(BusinessError):
    code = "InvalidParameter.TemplateParams"
    template = "TemplateParams must be a JSON object of strings: {detail}"


class MessageNotFound(BusinessError):
    code = "NotFound.Message"
    template = "No message {message_id} in this group."

    def __init__(self, message_id: str) -> None:
        super().__init__(message_id=message_id)


class ChatGroupNoMembers(BusinessError):
    code = "InvalidStatus.ChatGroupNoMembers"
    template = (
        "The group has no member but the business number: WhatsApp does not deliver messages "
        "to single-member groups{detail}"
    )


class MessageFilterInvalid(BusinessError):
    code = "InvalidParameter.FilterInvalid"
    template = "{detail}"


class SendOutcomeUnknown(BusinessError):
    code = "ChannelError.OutcomeUnknown"
    template = (
        "WhatsApp may or may not have accepted message {message_id} ({detail}); it is not sent "
        "again. Its fate: ListChatappMessage, the status callbacks."
    )

    def __init__(self, message_id: str, detail: str) -> None:
        super().__init__(detail, message_id=message_id)


class InvalidSecurityTokenMismatch(GatewayError):
    code = "InvalidSecurityToken.MismatchWithAccessKey"
    status = 400
    template = "The security token does not belong to this AccessKeyId."


class InvalidSecurityTokenExpired(GatewayError):
    code = "InvalidSecurityToken.Expired"
    status = 400
    template = "The security token has expired.{detail}"


class InvalidSecurityTokenMalformed(GatewayError):
    code = "InvalidSecurityToken.Malformed"
    status = 400
    template = "The security token is malformed: {detail}"


class ForbiddenRAM(GatewayError):
    code = "Forbidden.RAM"
    status = 403
    template = (
        "User not authorized to operate on the specified resource, or this API doesn't "
        "support RAM. {detail}"
    )

    def __init__(self, detail: str, access_denied_detail: dict[str, Any]) -> None:
        super().__init__(detail)
        self.body_extra = {"AccessDeniedDetail": access_denied_detail}


class ThrottlingUser(GatewayError):
    code = "Throttling.User"
    status = 429
    template = "Request was denied due to user flow control."

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__()
        # The SDK raises ThrottlingException when this header holds a positive integer (ms).
        self.headers = {"x-acs-retry-after": str(max(1, retry_after_ms))}


class EntityNotExistRole(GatewayError):
    code = "EntityNotExist.Role"
    status = 404
    template = "The role does not exist: {detail}"


class NoPermission(GatewayError):
    code = "NoPermission"
    status = 403
    template = "You are not authorized to do this action: {detail}"


class InvalidRoleArn(GatewayError):
    code = "InvalidParameter.RoleArn"
    status = 400
    template = "The parameter RoleArn is wrongly formed: {detail}"


class InvalidDuration(GatewayError):
    code = "InvalidParameter.DurationSeconds"
    status = 400
    template = "The parameter DurationSeconds is out of range: {detail}"


class PolicyGrammar(GatewayError):
    code = "InvalidParameter.PolicyGrammar"
    status = 400
    template = "The parameter Policy has not passed grammar check: {detail}"


class InvalidRoleSessionName(GatewayError):
    code = "InvalidParameter.RoleSessionName"
    status = 400
    template = "The parameter RoleSessionName is wrongly formed: {detail}"


# --- the database ---------------------------------------------------------------------------


class StoreError(OpenCamsError):
    """The database failed; raised by opencams.store only, translated from the drivers."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or refused to work (locked, down, restarting)."""


class StoreRejected(StoreError):
    """The database refused a value (too long for its column, a character it cannot store).
    Input is validated before it gets here; this is the backstop that keeps such a value a 400."""


class StoreConflict(StoreError):
    """A unique key is already taken (a concurrent writer committed the same row first)."""


# --- Meta -----------------------------------------------------------------------------------

GraphCategory = Literal["not_eligible", "throttled", "unavailable", "rejected"]


class GraphError(OpenCamsError):
    """A Graph API call failed. `category` is what the domain maps to a CAMS code:
    `not_eligible` (131215), `throttled`, `unavailable` (network, timeouts, 5xx) or `rejected`."""

    def __init__(
        self,
        category: GraphCategory,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retry_safe: bool = True,
    ) -> None:
        super().__init__(message)
        self.category: GraphCategory = category
        self.message = message
        self.code = code
        self.http_status = http_status
        self.retry_safe = retry_safe

    def describe(self) -> str:
        return f"(#{self.code}) {self.message}" if self.code is not None else self.message


class CircuitOpen(GraphError):
    """Graph calls are paused after repeated failures (channel.breaker)."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(
            "unavailable",
            f"Meta keeps failing: circuit open, next attempt in {retry_in:.0f}s",
            retry_safe=False,
        )
        self.retry_in = retry_in


class FetchRefused(OpenCamsError):
    """A caller-chosen URL that may not be fetched (SSRF rules) or could not be
    (opencams.safefetch); `reason` is safe to show to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PictureUnusable(FetchRefused):
    """A profile picture URL that cannot be used; `reason` is shown to the caller."""


class WebhookRejected(OpenCamsError):
    """A Meta delivery that is not authentic or not parseable; nothing of it may be applied."""


# --- requests and documents -----------------------------------------------------------------


class NotJson(OpenCamsError):
    """A JSON-form complex parameter that is not valid JSON (judged later, in its turn)."""


class PolicyError(OpenCamsError, ValueError):
    """A malformed RAM policy document; str(exc) says exactly what and where.

    e.g. ``Statement[1].Effect: must be "Allow" or "Deny", got "allow"``.
    """


# --- setting up -----------------------------------------------------------------------------


class SetupError(OpenCamsError):
    """What stops a command before it serves or changes anything; the CLI prints the message."""


class ConfigError(SetupError):
    """Settings that cannot work together."""


class SchemaError(SetupError):
    """The database schema is not one this version of opencams can serve."""


class SecretKeyError(SetupError):
    """The secret key is missing, unreadable, or not the one the data was encrypted with."""


class ProvisionError(SetupError):
    """The file cannot be applied; `problems` lists every reason, nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- the simulator --------------------------------------------------------------------------


class SimulatorError(OpenCamsError):
    """The built-in Meta simulator's own refusals (rendered by the simulator, never by CAMS)."""
