"""``x5c`` certificate chains in token headers, verified against ``rootcertbundle``.

Path validation is cryptography's (:mod:`cryptography.x509.verification`), as RFC 5280
has it: signatures, validity periods, every issuer a CA (basic constraints), path length
constraints and name constraints. Its default extension policies are the CA/Browser
Forum's for TLS certificates, which token-signing certificates are not (they have no
subjectAltName, often no key identifiers), so these policies keep what matters for a
certificate that signs tokens and leave out what only TLS asks for:

* a certificate that issues another has basic constraints with ``cA`` set, and a key
  usage, if it has one, that includes ``keyCertSign``;
* the signing certificate's key usage, if it has one, includes ``digitalSignature``;
* extended key usages are not checked, as registry:2 does not check them.

The keys of issuing certificates must be RSA of 2048 bits or more, or ECDSA on P-256,
P-384 or P-521 (the Web PKI's algorithms); the signing certificate's own key may be any
key a token can be signed with.

Path validation takes X.509 version 3 certificates only, while registry:2 also accepts a
version 1 signing certificate, which ``openssl x509 -req`` writes when given no
extensions. Such a certificate has no extension to check: it is accepted when it is in
``rootcertbundle`` itself, or when a certificate there that may issue certificates signed
it directly.
"""

from __future__ import annotations

import base64
import binascii
import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from dockyard.auth.keys import KeyProblem, PublicKey, TrustedKeys

MAX_CHAIN = 8
_NO_CERT_SIGN = "an issuer's key usage lacks keyCertSign"


def _issues_certificates(
    policy: Policy, cert: x509.Certificate, usage: x509.KeyUsage | None
) -> None:
    if usage is not None and not usage.key_cert_sign:
        raise ValueError(_NO_CERT_SIGN)


def _signs(policy: Policy, cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is not None and not usage.digital_signature:
        raise ValueError("the signing certificate's key usage lacks digitalSignature")


_ISSUER_POLICY = (
    ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _issues_certificates)
)
_SIGNER_POLICY = ExtensionPolicy.permit_all().may_be_present(
    x509.KeyUsage, Criticality.AGNOSTIC, _signs
)


def parse_x5c(x5c: object) -> list[x509.Certificate]:
    """The certificates of an ``x5c`` header (base64 DER, the signing one first)."""
    if not isinstance(x5c, list) or not x5c or len(x5c) > MAX_CHAIN:
        raise KeyProblem(f"x5c is not a list of 1 to {MAX_CHAIN} certificates")
    chain: list[x509.Certificate] = []
    for index, item in enumerate(x5c):
        if not isinstance(item, str):
            raise KeyProblem(f"x5c[{index}] is not a string")
        try:
            chain.append(x509.load_der_x509_certificate(base64.b64decode(item, validate=True)))
        except (ValueError, binascii.Error) as exc:
            raise KeyProblem(f"x5c[{index}] is not a base64 DER certificate: {exc}") from None
    return chain


def chain_key(x5c: object, trusted: TrustedKeys, now: datetime.datetime | None = None) -> PublicKey:
    """The signing certificate's key of an ``x5c`` chain that leads to one of the roots
    of ``trusted`` (the certificate may be a root itself)."""
    chain = parse_x5c(x5c)
    leaf = chain[0]
    now = now or datetime.datetime.now(datetime.UTC)
    _check_validity(leaf, now)
    store = trusted.root_store()  # refused here when there is no root at all
    if leaf.version == x509.Version.v1:
        _check_version1(leaf, trusted.roots, now)
    else:
        _check_path(leaf, chain[1:], store, now)
    key = leaf.public_key()
    if not isinstance(key, PublicKey):
        raise KeyProblem("x5c leaf has an unsupported key type")
    return key


def _check_path(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    store: Store,
    now: datetime.datetime,
) -> None:
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(now)
        .extension_policies(ee_policy=_SIGNER_POLICY, ca_policy=_ISSUER_POLICY)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except (VerificationError, x509.UnsupportedGeneralNameType) as exc:
        raise _unchained(leaf, str(exc).removeprefix("validation failed: ")) from None


def _unchained(leaf: x509.Certificate, reason: str) -> KeyProblem:
    return KeyProblem(
        f"x5c certificate {leaf.subject.rfc4514_string()!r} does not chain to a "
        f"certificate of rootcertbundle: {reason}"
    )


def _check_version1(
    leaf: x509.Certificate, roots: list[x509.Certificate], now: datetime.datetime
) -> None:
    """A version 1 signing certificate: in ``roots``, or signed by one that may issue."""
    if leaf in roots:
        return
    for root in roots:
        if root.subject != leaf.issuer:
            continue
        try:
            leaf.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature):
            continue
        problem = _issuer_problem(root)
        if problem is not None:
            raise _unchained(leaf, f"its issuer {root.subject.rfc4514_string()!r}: {problem}")
        _check_validity(root, now)
        return
    raise _unchained(
        leaf,
        "a version 1 certificate must be in rootcertbundle or signed by one of its "
        "certificates directly",
    )


def _issuer_problem(issuer: x509.Certificate) -> str | None:
    """Why ``issuer`` may not sign a version 1 certificate, the checks path validation
    makes on issuers (name constraints could only be checked on extensions it lacks)."""
    try:
        extensions = {extension.oid: extension.value for extension in issuer.extensions}
    except (ValueError, x509.DuplicateExtension) as exc:
        return f"unreadable extensions ({exc})"
    constraints = extensions.get(x509.BasicConstraints.oid)
    if not isinstance(constraints, x509.BasicConstraints) or not constraints.ca:
        return "not a CA (basicConstraints.cA is not set)"
    usage = extensions.get(x509.KeyUsage.oid)
    if isinstance(usage, x509.KeyUsage) and not usage.key_cert_sign:
        return _NO_CERT_SIGN
    if x509.NameConstraints.oid in extensions:
        return "it has name constraints, which a version 1 certificate cannot be held to"
    return None


def _check_validity(certificate: x509.Certificate, now: datetime.datetime) -> None:
    """The signing certificate's dates, checked first for a message that names them."""
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise KeyProblem(
            f"certificate {certificate.subject.rfc4514_string()!r} is not valid now "
            f"({certificate.not_valid_before_utc:%Y-%m-%d} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d})"
        )
