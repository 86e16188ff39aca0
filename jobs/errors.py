"""Error tree of the jobs CLI and the one place AWS exceptions are translated."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


class JobsError(Exception):
    """Base of every error the CLI reports as one line."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str = "", code: str = "") -> None:
        super().__init__(message)
        self.hint = hint
        self.code = code

    def line(self) -> str:
        """One line for stderr: message, AWS error code, and what to check."""
        text = str(self)
        if self.code:
            text = f"{text} [{self.code}]"
        if self.hint:
            text = f"{text} (hint: {self.hint})"
        return text


class InvalidInput(JobsError):
    """The user's input is wrong; nothing was sent to AWS."""

    exit_code = EXIT_BAD_INPUT


class NotFound(JobsError):
    """A job, queue, job definition or log stream does not exist."""


class AwsError(JobsError):
    """Any other failed AWS call."""


class JobFailed(JobsError):
    """The job reached a terminal state other than SUCCEEDED (or watching timed out)."""


_HINTS = {
    "AccessDeniedException": "check AWS_PROFILE / credentials and that the role may call {op}",
    "AccessDenied": "check AWS_PROFILE / credentials and that the role may call {op}",
    "UnrecognizedClientException": "the credentials are not valid here: check AWS_PROFILE",
    "InvalidClientTokenId": "the credentials are not valid here: check AWS_PROFILE",
    "ExpiredTokenException": "the session expired: refresh your credentials (aws sso login?)",
    "ThrottlingException": "still throttled after botocore's retries: retry later or raise "
    "AWS_MAX_ATTEMPTS",
    "TooManyRequestsException": "still throttled after botocore's retries: retry later or raise "
    "AWS_MAX_ATTEMPTS",
    "ResourceNotFoundException": "check the name and AWS_REGION; has the job started yet?",
}


def translate(exc: Exception, operation: str = "") -> JobsError:
    """Turn a botocore exception into a JobsError keeping the AWS error code."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "ClientError"))
        message = str(err.get("Message", "")) or str(exc)
        op = operation or exc.operation_name
        where = f"{op}: " if op else ""
        if code == "ResourceNotFoundException" or "does not exist" in message:
            hint = _HINTS["ResourceNotFoundException"]
            if "queue" in message.lower() or "definition" in message.lower():
                hint = (
                    "check --job-queue/--job-definition, JOB_QUEUE_NAME/JOB_DEFINITION_NAME, "
                    "the stack outputs and AWS_REGION"
                )
            return NotFound(f"{where}{message}", hint=hint, code=code)
        hint = _HINTS.get(code, "").format(op=op or "this API")
        if not hint and code in ("ClientException", "ValidationException"):
            hint = "AWS rejected the request: check the values named in the message"
        return AwsError(f"{where}{message}", hint=hint, code=code)
    if isinstance(exc, NoCredentialsError):
        return AwsError(
            "no AWS credentials found",
            hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        )
    if isinstance(exc, NoRegionError):
        return AwsError("no AWS region configured", hint="set AWS_REGION (the stack's region)")
    if isinstance(exc, EndpointConnectionError):
        return AwsError(str(exc), hint="check the network, AWS_REGION and AWS_ENDPOINT_URL")
    if isinstance(exc, BotoCoreError):
        return AwsError(str(exc))
    raise exc
