"""How a product verifies actas's Actas-Assertion header, in Python with PyJWT.

    pip install PyJWT cryptography
    python3 verify.py JWKS_URL AUDIENCE TOKEN

Prints the claims as JSON, or exits 1 saying why the assertion is not to be trusted.
actas's test suite runs this file against a real gateway (tests/integrate.rs).
"""

import json
import sys

import jwt


def verify(jwks_url: str, audience: str, token: str) -> dict:
    # The key the token names (kid), from actas's published keys; keys rotate, so look
    # it up by kid rather than keeping one key.
    key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],  # never accept another algorithm
        audience=audience,  # your product's name, as actas.toml's [gateway] audience says
        options={"require": ["exp", "iat", "sub", "aud", "act", "sid"]},
    )
    if claims["exp"] - claims["iat"] > 60:
        raise jwt.InvalidTokenError("the assertion lives longer than actas issues them")
    return claims


if __name__ == "__main__":
    try:
        print(json.dumps(verify(*sys.argv[1:4])))
    except Exception as e:  # noqa: BLE001 - any failure means: don't trust it
        print(f"not trusted: {e}", file=sys.stderr)
        sys.exit(1)
