"""Security set-up for token authentication (``auth.token``, ``access``): the verifier
of tokens, and Dockyard's own token service with its signing key and access rules.
Imported only when a configuration uses tokens (it loads the JWT and X.509 libraries)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

from dockyard.auth.algorithms import ASYMMETRIC_ALGORITHMS
from dockyard.auth.htpasswd import HtpasswdFile
from dockyard.auth.issuer import RulesTokenController, SigningKey, TokenIssuer
from dockyard.auth.keys import KeyProblem, TrustedKeys, load_certificates, load_jwks
from dockyard.auth.ratelimit import FailedLoginLimiter
from dockyard.auth.rules import AccessRules, Rule, RuleError
from dockyard.auth.token import Realm, TokenController, TokenVerifier
from dockyard.config import AccessConfig, Config, ConfigError, TokenAuthConfig
from dockyard.security import Security


def token_security(
    config: Config, limiter: FailedLoginLimiter, users: HtpasswdFile | None
) -> Security:
    """``auth.token``: verify tokens; with ``access``, also issue them (Dockyard's token
    service, its users in ``users``)."""
    token = config.auth.token
    assert token is not None
    realm = token_realm(token)
    if not config.access.enabled:
        return Security(TokenController(realm, token.service, make_token_verifier(token)))
    access = config.access
    key = load_signing_key(access)
    rules = make_rules(access)
    own = TrustedKeys()
    own.add_key(key.public_key())
    verifier = make_token_verifier(token, own)
    issuer = TokenIssuer(
        key,
        issuer=token.issuer,
        service=token.service,
        users=users or HtpasswdFile(access.htpasswd or ""),
        rules=rules,
        expiration=int(access.expiration.total_seconds()),
        limiter=limiter,
    )
    controller = RulesTokenController(realm, token.service, verifier, rules)
    return Security(controller, (config.token_endpoint_path(), issuer))


def token_realm(token: TokenAuthConfig) -> Realm:
    if token.autoredirect:
        return Realm(path=token.autoredirectpath)
    if token.realm.startswith("/"):
        return Realm(path=token.realm)
    return Realm(url=token.realm)


def make_token_verifier(
    token: TokenAuthConfig, own_keys: TrustedKeys | None = None
) -> TokenVerifier:
    """Trust the certificates of ``rootcertbundle``, the keys of ``jwks``, and ``own_keys``."""
    trusted = own_keys or TrustedKeys()
    if token.rootcertbundle:
        try:
            trusted.add_certificates(load_certificates(token.rootcertbundle))
        except KeyProblem as exc:
            raise ConfigError(f"auth.token.rootcertbundle: {exc}") from None
    if token.jwks:
        try:
            trusted.by_kid.update(load_jwks(token.jwks))
        except KeyProblem as exc:
            raise ConfigError(f"auth.token.jwks: {exc}") from None
    if not trusted:
        raise ConfigError("auth.token: rootcertbundle and jwks hold no key to verify tokens with")
    algorithms = token.signingalgorithms or ASYMMETRIC_ALGORITHMS
    return TokenVerifier(token.issuer, token.service, trusted, algorithms)


def load_signing_key(access: AccessConfig) -> SigningKey:
    path = Path(access.signingkey or "")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"access.signingkey: {path}: cannot read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"access.signingkey: {path}: not an unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, SigningKey):
        raise ConfigError(
            f"access.signingkey: {path}: a {type(key).__name__} cannot sign tokens "
            "(use RSA, EC P-256/P-384/P-521 or Ed25519)"
        )
    return key


def make_rules(access: AccessConfig) -> AccessRules:
    try:
        rules = [
            Rule.build(r.repositories, r.actions, r.users, r.groups, r.anonymous)
            for r in access.rules
        ]
        return AccessRules(rules, access.groups, access.admins.users, access.admins.groups)
    except RuleError as exc:
        raise ConfigError(f"access.rules: {exc}") from None
