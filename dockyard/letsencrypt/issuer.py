"""Obtaining a certificate over ACME (RFC 8555) with certbot's ``acme`` library.

Blocking (the library speaks through ``requests``): run it in a thread from async code.
The HTTP-01 answers are handed to ``publish`` before the CA is told to validate, and
withdrawn (``publish({})``) when the order is over, whatever its outcome.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import josepy
import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.jwk import JWKRSA

from dockyard.letsencrypt.alpn import answer_key
from dockyard.letsencrypt.cache import Certificate

USER_AGENT: Final = "dockyard-letsencrypt"
# How long one order may take, from the first request to the issued certificate.
ORDER_TIMEOUT: Final = datetime.timedelta(seconds=90)
NETWORK_TIMEOUT: Final = 30

Publish = Callable[[Mapping[str, str]], None]


class IssueError(Exception):
    """No certificate was obtained; the message says why, in the CA's words when it has them."""


@dataclass(frozen=True)
class Issued:
    account_key_pem: str
    account_uri: str
    certificate: Certificate


def new_account_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _pem(key)


def obtain(
    directory_url: str,
    hosts: tuple[str, ...],
    email: str | None,
    account_key_pem: str | None,
    publish: Publish,
    *,
    http01: bool = False,
) -> Issued:
    """A certificate for ``hosts`` from the CA at ``directory_url``; IssueError if not.
    The challenge answered is TLS-ALPN-01, or HTTP-01 with ``http01``.

    The account of ``account_key_pem`` is used (a new key when None); registering an
    existing key only looks its account up, so this works against a CA that has never
    seen the key as well as one that has.
    """
    account_key_pem = account_key_pem or new_account_key_pem()
    key = serialization.load_pem_private_key(account_key_pem.encode(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise IssueError("the cached account key is not an RSA key")
    network = client.ClientNetwork(JWKRSA(key=key), user_agent=USER_AGENT, timeout=NETWORK_TIMEOUT)
    try:
        try:
            directory = client.ClientV2.get_directory(directory_url, network)
        except (requests.RequestException, errors.Error, ValueError) as exc:
            raise IssueError(f"cannot reach the ACME directory {directory_url}: {exc}") from None
        acme = client.ClientV2(directory, network)
        account_uri = _account(acme, network, email)
        certificate = _order(acme, network, hosts, publish, http01)
    except messages.Error as exc:
        raise IssueError(f"the CA refused: {exc}") from None
    except errors.ValidationError as exc:
        raise IssueError(_validation_failure(exc)) from None
    except errors.Error as exc:
        raise IssueError(f"ACME order failed: {type(exc).__name__}: {exc}") from None
    except requests.RequestException as exc:
        raise IssueError(f"lost the ACME server at {directory_url}: {exc}") from None
    finally:
        network.session.close()
    return Issued(account_key_pem, account_uri, certificate)


def _account(acme: client.ClientV2, network: client.ClientNetwork, email: str | None) -> str:
    registration = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
    try:
        return acme.new_account(registration).uri
    except errors.ConflictError as exc:  # the key has an account already: use it
        network.account = messages.RegistrationResource(
            uri=exc.location, body=messages.Registration()
        )
        return exc.location


def _order(
    acme: client.ClientV2,
    network: client.ClientNetwork,
    hosts: tuple[str, ...],
    publish: Publish,
    http01: bool,
) -> Certificate:
    key_pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    order = acme.new_order(crypto_util.make_csr(key_pem.encode(), list(hosts)))
    answers: dict[str, str] = {}
    pending: list[messages.ChallengeBody] = []
    for authorization in order.authorizations:
        if authorization.body.status == messages.STATUS_VALID:
            continue  # the CA remembers an earlier validation
        wanted = "http-01" if http01 else "tls-alpn-01"
        name = authorization.body.identifier.value
        offered = authorization.body.challenges
        challenge = next((c for c in offered if _type(c) == wanted), None)
        if challenge is None:
            raise IssueError(f"the CA offers no {wanted} challenge for {name}")
        assert network.key is not None
        token = challenge.chall.to_partial_json()["token"]
        thumbprint = josepy.b64.b64encode(network.key.thumbprint(hash_function=hashes.SHA256))
        key_authorization = f"{token}.{thumbprint.decode()}"
        answers[token if http01 else answer_key(name)] = key_authorization
        pending.append(challenge)
    publish(answers)
    try:
        for challenge in pending:
            acme.answer_challenge(challenge, _Ready(_type(challenge)))
        deadline = datetime.datetime.now() + ORDER_TIMEOUT
        order = acme.poll_and_finalize(order, deadline)
    finally:
        if answers:
            publish({})
    return Certificate(hosts=hosts, chain_pem=order.fullchain_pem, key_pem=key_pem)


def _type(challenge: messages.ChallengeBody) -> str:
    return str(challenge.chall.to_partial_json().get("type"))


class _Ready(challenges.ChallengeResponse):
    """The empty ``{}`` that tells the CA to validate (RFC 8555, 7.5.1), for any type."""

    def __init__(self, typ: str) -> None:
        super().__init__()
        object.__setattr__(self, "typ", typ)

    def __bool__(self) -> bool:
        # the network sends an empty payload (POST-as-GET, which validates nothing) for a
        # falsy object, and a response without fields is falsy
        return True


def _validation_failure(exc: errors.ValidationError) -> str:
    reasons = []
    for authorization in exc.failed_authzrs:
        host = authorization.body.identifier.value
        problems = [str(c.error) for c in authorization.body.challenges if c.error is not None]
        reasons.append(f"{host}: {'; '.join(problems) or 'invalid'}")
    return "the CA could not validate " + ", ".join(reasons)


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
