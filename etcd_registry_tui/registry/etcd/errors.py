"""Errors of the data layer, each with a message a user can act on."""

from __future__ import annotations

import grpc
from aetcd import exceptions as aetcd_exc


class RegistryError(Exception):
    """Base class: ``str(err)`` is a one-line message, ``hint`` says what to do."""

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint

    def user_message(self) -> str:
        return f"{self} — {self.hint}" if self.hint else str(self)


class ConfigError(RegistryError):
    """Bad input: the message says what is wrong and, where it helps, a hint what to give."""


class ConnectionOptionError(ConfigError):
    """Bad input in the connection options themselves (endpoints, user, TLS files)."""

    hint = "check the connection options (--endpoints host:port, --user name:password)"


class EtcdUnavailable(RegistryError):
    hint = "is etcd running there? start one, or pass --endpoints host:port"


class EtcdTimeout(EtcdUnavailable):
    hint = "etcd did not answer in time; it may be overloaded, frozen or unreachable"


class EtcdTlsError(RegistryError):
    hint = "check --cacert/--cert/--key, and https:// for a TLS endpoint"


class EtcdAuthError(RegistryError):
    hint = "check --user name:password (or ETCDCTL_USER)"


class EtcdPermissionDenied(RegistryError):
    hint = "the user lacks a role with access to the prefix"


class LeaseNotFound(RegistryError):
    hint = "the lease already expired or was revoked"


class RevisionCompacted(RegistryError):
    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted up to {compact_revision}")
        self.compact_revision = compact_revision


class WatchRejected(RegistryError):
    hint = "the watch was cancelled by etcd; it will be re-created"


def _grpc_details(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, aetcd_exc.ClientError) else exc
    if isinstance(cause, grpc.aio.AioRpcError):
        return (cause.details() or "").lower()
    return ""


def is_stale_token(exc: BaseException | str) -> bool:
    """etcd no longer accepts the auth token (expired, or the auth store changed since):
    authenticating again fixes it, as etcd's own client does. ``exc`` may also be the
    text etcd gave, e.g. the cancel reason of a watch."""
    details = exc.lower() if isinstance(exc, str) else _grpc_details(exc)
    return "invalid auth token" in details or "revision of auth store is old" in details


def is_no_leader(text: str) -> bool:
    """The member has no leader (cut off from its quorum): another member may have one."""
    return "no leader" in text.lower()


def translate(exc: BaseException, endpoint: str) -> RegistryError:
    """Turn a gRPC or aetcd error into a :class:`RegistryError` naming the endpoint."""
    if isinstance(exc, RegistryError):
        return exc
    if isinstance(exc, aetcd_exc.RevisionCompactedError):
        return RevisionCompacted(exc.compacted_revision)
    code: grpc.StatusCode | None = None
    details = str(exc)
    cause = exc.__cause__ if isinstance(exc, aetcd_exc.ClientError) else exc
    if isinstance(cause, grpc.aio.AioRpcError):
        code = cause.code()
        details = cause.details() or code.name
    elif isinstance(exc, aetcd_exc.ConnectionFailedError):
        code = grpc.StatusCode.UNAVAILABLE
    elif isinstance(exc, aetcd_exc.ConnectionTimeoutError | TimeoutError):
        code = grpc.StatusCode.DEADLINE_EXCEEDED
    elif isinstance(exc, aetcd_exc.UnauthenticatedError):
        code = grpc.StatusCode.UNAUTHENTICATED
    lowered = details.lower()
    if "lease not found" in lowered:
        return LeaseNotFound(f"lease not found ({details})")
    if "authentication failed" in lowered or "invalid auth token" in lowered:
        return EtcdAuthError(f"etcd at {endpoint} refused the credentials: {details}")
    if "authentication is not enabled" in lowered:
        return EtcdAuthError(
            f"etcd at {endpoint} has authentication turned off",
            "drop --user (and ETCDCTL_USER) for this etcd",
        )
    if "user name is empty" in lowered or "user name not found" in lowered:
        return EtcdAuthError(f"etcd at {endpoint} requires a valid user: {details}")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return EtcdAuthError(f"etcd at {endpoint}: not authenticated ({details})")
    if code == grpc.StatusCode.PERMISSION_DENIED or "permission denied" in lowered:
        return EtcdPermissionDenied(f"etcd at {endpoint} denied access: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return EtcdTimeout(f"etcd at {endpoint} did not answer in time")
    tls_words = ("handshake", "ssl", "tsi_", "certificate", "unwrap failed")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN, None) and any(
        word in lowered for word in tls_words
    ):
        reason = "certificate not trusted" if "verify_failed" in lowered else "handshake failed"
        if "bad_certificate" in lowered or "unwrap failed" in lowered:
            reason = "etcd rejected the client certificate (or the connection is not TLS)"
        return EtcdTlsError(f"TLS with etcd at {endpoint} failed: {reason}")
    if code == grpc.StatusCode.UNAVAILABLE:
        reason = details.splitlines()[0] if details else "unavailable"
        if "connection refused" in lowered:
            reason = "connection refused"
        elif "timed out" in lowered:  # something listens but never completes the handshake
            return EtcdTimeout(f"etcd at {endpoint} did not answer in time (connect timed out)")
        elif "socket closed" in lowered:  # typical of plain text sent to a TLS port
            return EtcdUnavailable(
                f"etcd at {endpoint} closed the connection",
                "if it serves TLS, use https:// with --cacert (and --cert/--key)",
            )
        return EtcdUnavailable(f"cannot reach etcd at {endpoint}: {reason}")
    if code == grpc.StatusCode.CANCELLED:
        return EtcdUnavailable(f"connection to etcd at {endpoint} was closed")
    return RegistryError(f"etcd at {endpoint}: {details}")
