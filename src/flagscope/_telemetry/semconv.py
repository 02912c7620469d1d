"""Every OpenTelemetry ``feature_flag`` key and event name flagscope reads.

The keys cover every semantic-convention version seen in the wild. Where a
field has several spellings, the alias tuple lists them newest first: the
mapper takes the first one present.
"""

from __future__ import annotations

from typing import Final

# Event names, newest first. v1.29 renamed ``feature_flag`` to
# ``feature_flag.evaluation``; LaunchDarkly's Python hook still sends the old name.
EVENT_NAME: Final = "feature_flag.evaluation"
EVENT_NAME_LEGACY: Final = "feature_flag"
EVENT_NAMES: Final = frozenset({EVENT_NAME, EVENT_NAME_LEGACY})

# Span-hook producers (the JS hooks) emit a child span with this name and put the
# flag keys on the span itself.
SPAN_NAME: Final = EVENT_NAME

# Log-based events carry their name in the record's ``event_name`` or, from older
# SDKs and bridges, in this attribute.
LOG_EVENT_NAME_ATTRIBUTE: Final = "event.name"

# Current keys (semconv v1.40 to v1.44).
KEY: Final = "feature_flag.key"
RESULT_VARIANT: Final = "feature_flag.result.variant"
RESULT_VALUE: Final = "feature_flag.result.value"
RESULT_REASON: Final = "feature_flag.result.reason"
PROVIDER_NAME: Final = "feature_flag.provider.name"
CONTEXT_ID: Final = "feature_flag.context.id"
SET_ID: Final = "feature_flag.set.id"
VERSION: Final = "feature_flag.version"
ERROR_TYPE: Final = "error.type"
ERROR_MESSAGE: Final = "feature_flag.error.message"

# Deprecated keys.
VARIANT_LEGACY: Final = "feature_flag.variant"  # before v1.32
EVALUATION_REASON_LEGACY: Final = "feature_flag.evaluation.reason"  # before v1.32
PROVIDER_NAME_LEGACY: Final = "feature_flag.provider_name"  # before v1.33
ERROR_MESSAGE_GENERIC: Final = "error.message"  # v1.33 to v1.39; OpenFeature hook 0.3
EVALUATION_ERROR_MESSAGE_LEGACY: Final = "feature_flag.evaluation.error.message"  # before v1.33
LOG_BODY_VALUE: Final = "value"  # log body field, v1.29 to v1.33

# Alias precedence, newest first.
VARIANT_KEYS: Final = (RESULT_VARIANT, VARIANT_LEGACY)
REASON_KEYS: Final = (RESULT_REASON, EVALUATION_REASON_LEGACY)
PROVIDER_KEYS: Final = (PROVIDER_NAME, PROVIDER_NAME_LEGACY)
ERROR_MESSAGE_KEYS: Final = (
    ERROR_MESSAGE,
    ERROR_MESSAGE_GENERIC,
    EVALUATION_ERROR_MESSAGE_LEGACY,
)

# Resource attributes.
SERVICE_NAME: Final = "service.name"
# Which SDK made the telemetry ("python", "nodejs", "webjs", "go", "java", ...):
# ``auto`` value decoding reads it to know how the producer encodes values.
TELEMETRY_SDK_LANGUAGE: Final = "telemetry.sdk.language"

# The provider name LaunchDarkly's hooks send: they JSON-encode every value.
PROVIDER_LAUNCHDARKLY: Final = "LaunchDarkly"

# Well-known ``error.type`` values (OpenFeature error codes, lowercased).
ERROR_FLAG_NOT_FOUND: Final = "flag_not_found"
ERROR_INVALID_CONTEXT: Final = "invalid_context"
ERROR_PARSE_ERROR: Final = "parse_error"
ERROR_PROVIDER_FATAL: Final = "provider_fatal"
ERROR_PROVIDER_NOT_READY: Final = "provider_not_ready"
ERROR_TARGETING_KEY_MISSING: Final = "targeting_key_missing"
ERROR_TYPE_MISMATCH: Final = "type_mismatch"
ERROR_GENERAL: Final = "general"
ERROR_OTHER: Final = "_OTHER"
ERROR_TYPES: Final = frozenset(
    {
        ERROR_FLAG_NOT_FOUND,
        ERROR_INVALID_CONTEXT,
        ERROR_PARSE_ERROR,
        ERROR_PROVIDER_FATAL,
        ERROR_PROVIDER_NOT_READY,
        ERROR_TARGETING_KEY_MISSING,
        ERROR_TYPE_MISMATCH,
        ERROR_GENERAL,
        ERROR_OTHER,
    }
)

# Carries flag keys but is no evaluation: OpenFeature's hook records failures with it.
EXCEPTION_EVENT_NAME: Final = "exception"

# The span attributes an outcome reads: the HTTP status of a request, current name
# first, then the name before semconv v1.21.
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
HTTP_STATUS_CODE_OLD = "http.status_code"
