// How a product verifies actas's Actas-Assertion header, in Node with jose.
//
//   npm install jose
//   node verify.mjs JWKS_URL AUDIENCE TOKEN
//
// Prints the claims as JSON, or exits 1 saying why the assertion is not to be trusted.
// actas's test suite runs this file against a real gateway (tests/integrate.rs).
import { createRemoteJWKSet, jwtVerify } from "jose";

export async function verify(jwksUrl, audience, token) {
  // actas's published keys, fetched and cached; a rotated key is found by its kid.
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload } = await jwtVerify(token, jwks, {
    algorithms: ["EdDSA"], // never accept another algorithm
    audience, // your product's name, as actas.toml's [gateway] audience says
    maxTokenAge: "60s", // actas issues them for 60 seconds at most
    requiredClaims: ["exp", "iat", "sub", "act", "sid"],
  });
  return payload;
}

const [jwksUrl, audience, token] = process.argv.slice(2);
try {
  console.log(JSON.stringify(await verify(jwksUrl, audience, token)));
} catch (e) {
  console.error(`not trusted: ${e.message}`);
  process.exit(1);
}
