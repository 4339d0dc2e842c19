"""Token verification: the matrix of what registry:2 accepts and refuses, and the challenges."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from dockyard.auth.access import CATALOG_ACCESS, repository_access
from dockyard.auth.controller import AuthRequest
from dockyard.auth.keys import (
    TrustedKeys,
    jwk_members,
    jwk_thumbprint,
    libtrust_key_id,
    load_jwks,
)
from dockyard.auth.token import Realm, TokenController, TokenRejected, TokenVerifier
from dockyard.oci import errors
from tests.security.pki import Issued, cert_pem, issue, new_key

ISSUER, SERVICE = "token.example.com", "registry.example.com"


def der_b64(issued: Issued) -> str:
    return base64.b64encode(issued.cert.public_bytes(serialization.Encoding.DER)).decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 5,
        "iat": now,
        "jti": "abc",
        "access": [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, alg: str, body: dict[str, Any], **header: Any) -> str:
    return jwt.encode(body, key, algorithm=alg, headers=header or None)


@pytest.fixture(scope="module")
def ca() -> Issued:
    return issue("Token CA", new_key("ec"), ca=True)


@pytest.fixture(scope="module")
def signer_rsa() -> Issued:
    return issue("token signer rsa", new_key("rsa"))


@pytest.fixture(scope="module")
def signer_ec() -> Issued:
    return issue("token signer ec", new_key("ec"))


@pytest.fixture(scope="module")
def verifier(signer_rsa: Issued, signer_ec: Issued, ca: Issued) -> TokenVerifier:
    trusted = TrustedKeys()
    trusted.add_certificates([signer_rsa.cert, signer_ec.cert, ca.cert])
    return TokenVerifier(ISSUER, SERVICE, trusted)


def kid(issued: Issued) -> str:
    return libtrust_key_id(issued.key.public_key())


# ---- key ids ---------------------------------------------------------------------------


def test_libtrust_key_id_format(signer_rsa: Issued) -> None:
    key_id = kid(signer_rsa)
    assert re.fullmatch(r"[A-Z2-7]{4}(:[A-Z2-7]{4}){11}", key_id)
    # SHA-256 of the DER SubjectPublicKeyInfo, 240 bits, base32
    import hashlib

    der = signer_rsa.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    assert key_id.replace(":", "") == expected


def test_jwk_thumbprint_matches_rfc7638_example() -> None:
    # RFC 7638 section 3.1
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
        "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
        "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWh"
        "AI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    jwk = {"kty": "RSA", "n": n, "e": "AQAB"}
    key = jwt.PyJWK(jwk, algorithm="RS256").key
    assert jwk_members(key) == {"e": "AQAB", "kty": "RSA", "n": n}
    assert jwk_thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# ---- what is accepted --------------------------------------------------------------------


def test_rsa_token_named_by_libtrust_kid(verifier: TokenVerifier, signer_rsa: Issued) -> None:
    token = sign(signer_rsa.key, "RS256", claims(), kid=kid(signer_rsa))
    assert verifier.verify(token)["sub"] == "alice"


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256"])
def test_algorithms(
    verifier: TokenVerifier, signer_rsa: Issued, signer_ec: Issued, alg: str
) -> None:
    signer = signer_ec if alg.startswith("ES") else signer_rsa
    assert verifier.verify(sign(signer.key, alg, claims(), kid=kid(signer)))["iss"] == ISSUER


def test_kid_as_jwk_thumbprint(verifier: TokenVerifier, signer_ec: Issued) -> None:
    thumbprint = jwk_thumbprint(signer_ec.key.public_key())
    assert verifier.verify(sign(signer_ec.key, "ES256", claims(), kid=thumbprint))


def test_audience_list(verifier: TokenVerifier, signer_ec: Issued) -> None:
    token = sign(signer_ec.key, "ES256", claims(aud=["other", SERVICE]), kid=kid(signer_ec))
    assert verifier.verify(token)


def test_clock_skew_within_leeway(verifier: TokenVerifier, signer_ec: Issued) -> None:
    now = int(time.time())
    token = sign(signer_ec.key, "ES256", claims(exp=now - 30, nbf=now + 30), kid=kid(signer_ec))
    assert verifier.verify(token)


def test_x5c_chain_to_a_root(ca: Issued, signer_ec: Issued) -> None:
    intermediate = issue("Token intermediate", new_key("ec"), ca, ca=True)
    leaf = issue("token leaf", new_key("ec"), intermediate)
    trusted = TrustedKeys()
    trusted.add_certificates([ca.cert])  # only the root
    verifier = TokenVerifier(ISSUER, SERVICE, trusted)
    chain = [der_b64(leaf), der_b64(intermediate)]
    assert verifier.verify(sign(leaf.key, "ES256", claims(), x5c=chain))
    # a self-signed signer whose certificate is itself in the bundle
    trusted.add_certificates([signer_ec.cert])
    assert verifier.verify(sign(signer_ec.key, "ES256", claims(), x5c=[der_b64(signer_ec)]))


def test_jwks(tmp_path: Path) -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    ec = new_key("ec")
    entries = []
    for key_id, key, alg in (("ed-1", ed, "EdDSA"), ("ec-1", ec, "ES256")):
        entry = {**jwk_members(key.public_key()), "kid": key_id, "alg": alg, "use": "sig"}
        entries.append(entry)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": entries}))
    trusted = TrustedKeys()
    trusted.by_kid.update(load_jwks(path))
    verifier = TokenVerifier(ISSUER, SERVICE, trusted)
    assert verifier.verify(sign(ed, "EdDSA", claims(), kid="ed-1"))
    assert verifier.verify(sign(ec, "ES256", claims(), kid="ec-1"))
    with pytest.raises(TokenRejected, match="untrusted key"):
        verifier.verify(sign(ec, "ES256", claims(), kid="ed-2"))
    with pytest.raises(TokenRejected):  # the right kid, the wrong key
        verifier.verify(sign(new_key("ec"), "ES256", claims(), kid="ec-1"))


def test_embedded_jwk(verifier: TokenVerifier, signer_ec: Issued) -> None:
    public = jwk_members(signer_ec.key.public_key())
    assert verifier.verify(sign(signer_ec.key, "ES256", claims(), jwk=public))
    stranger = new_key("ec")
    with pytest.raises(TokenRejected, match="untrusted key"):
        verifier.verify(sign(stranger, "ES256", claims(), jwk=jwk_members(stranger.public_key())))


# ---- what is refused ---------------------------------------------------------------------


def _refused(verifier: TokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(TokenRejected, match=reason):
        verifier.verify(token)


def test_expired(verifier: TokenVerifier, signer_ec: Issued) -> None:
    token = sign(signer_ec.key, "ES256", claims(exp=int(time.time()) - 120), kid=kid(signer_ec))
    _refused(verifier, token, "Expired")


def test_missing_expiry(verifier: TokenVerifier, signer_ec: Issued) -> None:
    _refused(verifier, sign(signer_ec.key, "ES256", claims(exp=None), kid=kid(signer_ec)), "exp")


def test_not_yet_valid(verifier: TokenVerifier, signer_ec: Issued) -> None:
    token = sign(signer_ec.key, "ES256", claims(nbf=int(time.time()) + 120), kid=kid(signer_ec))
    _refused(verifier, token, "Immature")


def test_wrong_audience(verifier: TokenVerifier, signer_ec: Issued) -> None:
    token = sign(signer_ec.key, "ES256", claims(aud="other.example.com"), kid=kid(signer_ec))
    _refused(verifier, token, "Audience")
    _refused(verifier, sign(signer_ec.key, "ES256", claims(aud=None), kid=kid(signer_ec)), "aud")


def test_wrong_issuer(verifier: TokenVerifier, signer_ec: Issued) -> None:
    token = sign(signer_ec.key, "ES256", claims(iss="evil.example.com"), kid=kid(signer_ec))
    _refused(verifier, token, "Issuer")


def test_alg_none(verifier: TokenVerifier, signer_ec: Issued) -> None:
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "none", "typ": "JWT", "kid": kid(signer_ec)}).encode()
    ).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    for token in (f"{header.decode()}.{body.decode()}.", f"{header.decode()}.{body.decode()}.AA"):
        _refused(verifier, token, "'none' is not accepted")


def test_hmac_with_the_public_key_as_secret(verifier: TokenVerifier, signer_rsa: Issued) -> None:
    # the classic confusion: HS256 "signed" with the PEM of the trusted public key
    pem = signer_rsa.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = {"alg": "HS256", "typ": "JWT", "kid": kid(signer_rsa)}
    import hashlib
    import hmac

    head = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    mac = hmac.new(pem, head + b"." + payload, hashlib.sha256).digest()
    token = b".".join([head, payload, base64.urlsafe_b64encode(mac).rstrip(b"=")]).decode()
    _refused(verifier, token, "'HS256' is not accepted")


def test_bad_signature(verifier: TokenVerifier, signer_ec: Issued) -> None:
    token = sign(signer_ec.key, "ES256", claims(), kid=kid(signer_ec))
    head, _, signature = token.split(".")
    forged = base64.urlsafe_b64encode(
        json.dumps(claims(access=[{"type": "repository", "name": "*", "actions": ["*"]}])).encode()
    ).rstrip(b"=")
    _refused(verifier, f"{head}.{forged.decode()}.{signature}", "Signature")
    # signed by a stranger who names a trusted key
    _refused(verifier, sign(new_key("ec"), "ES256", claims(), kid=kid(signer_ec)), "Signature")


def test_untrusted_x5c(verifier: TokenVerifier, ca: Issued) -> None:
    other_ca = issue("Other CA", new_key("ec"), ca=True)
    leaf = issue("leaf", new_key("ec"), other_ca)
    token = sign(leaf.key, "ES256", claims(), x5c=[der_b64(leaf), der_b64(other_ca)])
    _refused(verifier, token, "does not chain")
    # a leaf of the trusted CA used as if it were a CA
    not_a_ca = issue("not a ca", new_key("ec"), ca)
    grandchild = issue("grandchild", new_key("ec"), not_a_ca)
    token = sign(grandchild.key, "ES256", claims(), x5c=[der_b64(grandchild), der_b64(not_a_ca)])
    _refused(verifier, token, "does not chain")
    # an expired certificate in the chain
    import datetime

    old = issue(
        "expired leaf",
        new_key("ec"),
        ca,
        not_before=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=40),
    )
    _refused(verifier, sign(old.key, "ES256", claims(), x5c=[der_b64(old)]), "not valid now")


def test_no_key_named(verifier: TokenVerifier, signer_ec: Issued) -> None:
    _refused(verifier, sign(signer_ec.key, "ES256", claims()), "names no signing key")
    _refused(verifier, sign(signer_ec.key, "ES256", claims(), kid="NOPE"), "untrusted key")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "e30.e30.", "x" * 20000])
def test_garbage(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(TokenRejected):
        verifier.verify(token)


# ---- the controller: challenges and scope --------------------------------------------------


def bearer(token: str) -> AuthRequest:
    return AuthRequest(f"Bearer {token}", "192.0.2.1", "https://registry.example.com")


@pytest.fixture
def controller(verifier: TokenVerifier) -> TokenController:
    return TokenController(Realm(url="https://auth.example.com/token"), SERVICE, verifier)


async def test_challenge_without_token(controller: TokenController) -> None:
    required = repository_access("team/app", "pull")
    with pytest.raises(errors.RegistryError) as caught:
        await controller.authenticate(AuthRequest(None, "192.0.2.1", "https://r"), required)
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"] == (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:team/app:pull"'
    )
    with pytest.raises(errors.RegistryError) as caught:
        await controller.authenticate(AuthRequest("Basic YTpi", "192.0.2.1", "https://r"), [])
    assert caught.value.headers["WWW-Authenticate"] == (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com"'
    )


async def test_invalid_token_challenge(controller: TokenController, signer_ec: Issued) -> None:
    token = sign(signer_ec.key, "ES256", claims(iss="evil"), kid=kid(signer_ec))
    with pytest.raises(errors.RegistryError) as caught:
        await controller.authenticate(bearer(token), repository_access("team/app", "pull"))
    assert caught.value.status == 401
    assert caught.value.body()["errors"][0]["code"] == "UNAUTHORIZED"
    assert caught.value.headers["WWW-Authenticate"].endswith(
        'scope="repository:team/app:pull",error="invalid_token"'
    )


async def test_scope_escalation_is_refused(controller: TokenController, signer_ec: Issued) -> None:
    token = sign(signer_ec.key, "ES256", claims(), kid=kid(signer_ec))  # team/app: pull, push
    request = bearer(token)
    identity = await controller.authenticate(request, [])
    assert identity.name == "alice"
    controller.authorize(identity, request, repository_access("team/app", "pull", "push"))
    for required in (
        repository_access("team/app", "delete"),
        repository_access("team/other", "pull"),
        repository_access("team/app2", "pull"),
        repository_access("Team/app", "pull"),
        [CATALOG_ACCESS],
    ):
        with pytest.raises(errors.RegistryError) as caught:
            controller.authorize(identity, request, required)
        assert caught.value.status == 401
        body = caught.value.body()["errors"][0]
        assert body["code"] == "UNAUTHORIZED"
        assert body["detail"] == [access.as_record() for access in required]
        challenge = caught.value.headers["WWW-Authenticate"]
        assert challenge.endswith(',error="insufficient_scope"')


async def test_wildcard_actions_and_catalog(controller: TokenController, signer_ec: Issued) -> None:
    access = [
        {"type": "repository", "name": "team/app", "actions": ["*"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    request = bearer(sign(signer_ec.key, "ES256", claims(access=access), kid=kid(signer_ec)))
    identity = await controller.authenticate(request, [])
    controller.authorize(identity, request, repository_access("team/app", "pull", "push", "delete"))
    controller.authorize(identity, request, [CATALOG_ACCESS])


def test_relative_realm_follows_the_request() -> None:
    realm = Realm(path="/auth/token")
    request = AuthRequest(None, "192.0.2.1", "https://registry.example.com:8443")
    assert realm.for_request(request) == "https://registry.example.com:8443/auth/token"


def test_bundle_pem_round_trip(tmp_path: Path, signer_rsa: Issued, ca: Issued) -> None:
    from dockyard.auth.keys import load_certificates

    path = tmp_path / "bundle.pem"
    path.write_bytes(cert_pem(signer_rsa.cert) + b"\n" + cert_pem(ca.cert))
    trusted = TrustedKeys()
    trusted.add_certificates(load_certificates(path))
    assert kid(signer_rsa) in trusted.by_kid and kid(ca) in trusted.by_kid
