// Self-check for provider.mjs: starts it, walks full authorization code flows
// the way a browser + relying party would (manual redirects, a cookie jar,
// PKCE S256, state, nonce), and checks the ID tokens, the tamper hook and key
// rotation. Run with `node selfcheck.mjs` (VERBOSE=1 to see the provider's
// log). Exits non-zero on the first failure.

import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const CLIENT_ID = 'actas';
const CLIENT_SECRET = 'actas-secret';
const REDIRECT_URI = 'http://127.0.0.1:9/callback';

let issuer; // set once the provider has printed it

// ---------------------------------------------------------------------------
// Helpers.

const now = () => Math.floor(Date.now() / 1000);

function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
  };
}

// Verify an RS256 JWT against a JWKS; returns the matching key's kid or null.
function verifyWithJwks(jwt, jwks) {
  const [h, p, s] = jwt.split('.');
  const { kid } = JSON.parse(Buffer.from(h, 'base64url'));
  const jwk = jwks.keys.find((k) => k.kid === kid);
  if (!jwk) return null;
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const ok = crypto.verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'));
  return ok ? kid : null;
}

// A minimal path-aware cookie jar (enough for oidc-provider's cookies).
class CookieJar {
  cookies = new Map(); // `${path} ${name}` -> { name, value, path }

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = value === '';
      for (const attr of attrs) {
        const [k, v = ''] = attr.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      const key = `${path} ${name}`;
      if (expired) this.cookies.delete(key);
      else this.cookies.set(key, { name, value, path });
    }
  }

  header(url) {
    const { pathname } = new URL(url);
    return [...this.cookies.values()]
      .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

// One browser: fetch with manual redirects and the jar.
class Browser {
  jar = new CookieJar();

  async request(url, init = {}) {
    const headers = { ...init.headers };
    const cookie = this.jar.header(url);
    if (cookie) headers.cookie = cookie;
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.jar.store(response);
    return response;
  }

  // Follow redirects from `url` until one points at the client's redirect URI
  // (returned as a URL) or a page that is not a redirect (returned as a
  // Response). Like a browser running JavaScript, auto-submit oidc-provider's
  // self-posting forms ("Submitting Callback"; used e.g. to end the previous
  // session when a different user logs in).
  async follow(url, redirectUri = REDIRECT_URI) {
    let init;
    for (let hops = 0; hops < 10; hops += 1) {
      if (url.startsWith(redirectUri)) return new URL(url);
      const response = await this.request(url, init);
      init = undefined;
      const location = response.headers.get('location');
      if (!location) {
        const html = response.headers.get('content-type')?.startsWith('text/html') ? await response.clone().text() : '';
        if (!html.includes('<title>Submitting Callback</title>')) return response;
        const action = html.match(/<form method="post" action="([^"]+)"/)[1].replaceAll('&amp;', '&');
        const inputs = [...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)];
        init = {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(inputs.map(([, k, v]) => [k, v])),
        };
        url = new URL(action, url).href;
        continue;
      }
      await response.arrayBuffer();
      url = new URL(location, url).href;
    }
    throw new Error('too many redirects');
  }
}

function authorizationRequest({ clientId = CLIENT_ID, scope = 'openid email profile groups', extra = {} } = {}) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const state = crypto.randomBytes(8).toString('hex');
  const nonce = crypto.randomBytes(8).toString('hex');
  const params = {
    client_id: clientId,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope,
    state,
    nonce,
    code_challenge: crypto.hash('sha256', verifier, 'base64url'),
    code_challenge_method: 'S256',
    prompt: 'login',
    max_age: '300',
    ...extra,
  };
  // An `extra` value of undefined drops that parameter.
  const url = new URL(`${issuer}/auth`);
  url.search = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined));
  return { url: url.href, verifier, state, nonce, clientId };
}

async function submitLoginForm(browser, page, fields) {
  assert.equal(page.status, 200, 'interaction page status');
  const html = await page.text();
  assert.match(html, /<title>Test identity provider<\/title>/);
  for (const id of ['sub', 'email', 'groups', 'acr', 'age']) {
    assert.match(html, new RegExp(`id="${id}" name="${id}"`), `form field ${id}`);
  }
  assert.match(html, /id="sign-in"/);
  const action = html.match(/action="([^"]+)"/)[1];
  const response = await browser.request(new URL(action, page.url).href, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields),
  });
  assert.equal(response.status, 303, 'login POST answers 303');
  return new URL(response.headers.get('location'), page.url).href;
}

async function exchangeCode(code, verifier, { clientId = CLIENT_ID, secret = CLIENT_SECRET } = {}) {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier,
    }),
  });
  return { status: response.status, body: await response.json() };
}

const LOGIN = { sub: 'u1', email: 'sarah@example.com', groups: 'support-leads,agents', acr: 'urn:actas:mfa', age: '10' };

// The whole flow; `between` runs after /auth has reached the login page.
async function flow({ login = LOGIN, clientId, secret, between, extra, browser = new Browser() } = {}) {
  const req = authorizationRequest({ clientId, extra });
  const page = await browser.follow(req.url);
  assert.ok(page instanceof Response, 'expected the login page, not a redirect to the client');
  assert.match(new URL(page.url).pathname, /^\/interaction\/[^/]+$/);
  if (between) await between();
  const next = await submitLoginForm(browser, page, login);
  const callback = await browser.follow(next);
  assert.ok(callback instanceof URL, `expected a redirect to the client, got ${callback.status}`);
  assert.equal(callback.searchParams.get('error'), null, `authorization error: ${callback.search}`);
  assert.equal(callback.searchParams.get('state'), req.state);
  assert.equal(callback.searchParams.get('iss'), issuer);
  const code = callback.searchParams.get('code');
  assert.ok(code, 'code in callback');
  const tokens = await exchangeCode(code, req.verifier, { clientId, secret });
  assert.equal(tokens.status, 200, `token endpoint: ${JSON.stringify(tokens.body)}`);
  return { req, tokens: tokens.body, ...decodeJwt(tokens.body.id_token) };
}

async function jwks() {
  return (await fetch(`${issuer}/jwks`)).json();
}

async function hook(path, body) {
  const response = await fetch(`${issuer}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}),
  });
  assert.equal(response.status, 204, `${path} status`);
}

// ---------------------------------------------------------------------------
// The checks.

async function main() {
  // Discovery and JWKS.
  const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  assert.equal(discovery.issuer, issuer);
  assert.ok(!issuer.endsWith('/'));
  assert.equal(discovery.token_endpoint, `${issuer}/token`);
  assert.equal(discovery.jwks_uri, `${issuer}/jwks`);
  assert.deepEqual(discovery.response_types_supported, ['code']);
  assert.deepEqual(discovery.code_challenge_methods_supported, ['S256']);
  assert.deepEqual(discovery.scopes_supported, ['openid', 'email', 'profile', 'groups']);
  assert.deepEqual(discovery.id_token_signing_alg_values_supported, ['RS256']);
  assert.deepEqual(discovery.acr_values_supported, ['urn:actas:pwd', 'urn:actas:mfa']);
  const keys1 = await jwks();
  assert.equal(keys1.keys.length, 1);
  assert.equal(keys1.keys[0].kty, 'RSA');
  assert.ok(keys1.keys[0].kid);
  assert.equal(keys1.keys[0].d, undefined, 'JWKS must not contain private key material');
  const kid1 = keys1.keys[0].kid;
  console.log(`ok discovery + jwks (kid ${kid1})`);

  // A full flow.
  const { req, tokens, header, payload } = await flow();
  console.log('id_token header:', JSON.stringify(header));
  console.log('id_token claims:', JSON.stringify(payload));
  assert.equal(header.alg, 'RS256');
  assert.equal(header.kid, kid1);
  assert.equal(verifyWithJwks(tokens.id_token, keys1), kid1, 'signature verifies with the JWKS');
  assert.equal(payload.iss, issuer);
  assert.equal(payload.aud, CLIENT_ID);
  assert.equal(payload.sub, 'u1');
  assert.equal(payload.nonce, req.nonce);
  assert.ok(payload.exp > now() && payload.iat <= now() + 1);
  assert.ok(Math.abs(payload.auth_time - (now() - 10)) <= 2, `auth_time ${payload.auth_time} ≈ now-10`);
  assert.equal(payload.acr, 'urn:actas:mfa');
  assert.deepEqual(payload.amr, ['pwd', 'otp']);
  assert.equal(payload.email, 'sarah@example.com');
  assert.equal(payload.email_verified, true);
  assert.equal(payload.name, 'sarah@example.com');
  assert.deepEqual(payload.groups, ['support-leads', 'agents']);
  assert.equal(tokens.token_type, 'Bearer');
  assert.ok(tokens.access_token);
  assert.equal(tokens.refresh_token, undefined);
  console.log('ok authorization code flow');

  // The userinfo endpoint answers for the access token too.
  const userinfo = await (await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } })).json();
  assert.equal(userinfo.sub, 'u1');
  assert.deepEqual(userinfo.groups, ['support-leads', 'agents']);
  console.log('ok userinfo');

  // Password-only login, no acr chosen: no acr claim, amr [pwd].
  {
    const { payload: p } = await flow({ login: { sub: 'u2', email: 'bob@example.com', groups: '', acr: '', age: '0' } });
    assert.equal(p.acr, undefined);
    assert.deepEqual(p.amr, ['pwd']);
    assert.deepEqual(p.groups, []);
    assert.ok(Math.abs(p.auth_time - now()) <= 2);
    console.log('ok login without acr');
  }

  // prompt=consent: the consent interaction is finished automatically.
  {
    const { payload: p } = await flow({ extra: { prompt: 'login consent', acr_values: 'urn:actas:pwd' } });
    assert.equal(p.sub, 'u1');
    assert.equal(p.acr, 'urn:actas:mfa', 'acr is what the login recorded');
    console.log('ok prompt=consent answered without a consent screen');
  }

  // PKCE is required, and the verifier must match.
  {
    const browser = new Browser();
    const url = new URL(authorizationRequest().url);
    url.searchParams.delete('code_challenge');
    url.searchParams.delete('code_challenge_method');
    const callback = await browser.follow(url.href);
    assert.ok(callback instanceof URL);
    assert.equal(callback.searchParams.get('error'), 'invalid_request');
    const r = authorizationRequest();
    const page = await browser.follow(r.url);
    const cb = await browser.follow(await submitLoginForm(browser, page, LOGIN));
    const bad = await exchangeCode(cb.searchParams.get('code'), crypto.randomBytes(32).toString('base64url'));
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, 'invalid_grant');
    console.log('ok PKCE enforced');
  }

  // The second client gets tokens for its own audience.
  {
    const { payload: p } = await flow({ clientId: 'other-app', secret: 'other-secret' });
    assert.equal(p.aud, 'other-app');
    console.log('ok other-app audience');
  }

  // Tamper: aud overwritten, email deleted, still validly signed; applies once.
  {
    await hook('/__test/tamper', { aud: 'someone-else', email: null });
    const t = await flow();
    assert.equal(t.payload.aud, 'someone-else');
    assert.equal(t.payload.email, undefined);
    assert.equal(t.payload.sub, 'u1');
    assert.equal(t.header.kid, kid1);
    assert.equal(verifyWithJwks(t.tokens.id_token, await jwks()), kid1, 'tampered token still verifies');
    const after = await flow();
    assert.equal(after.payload.aud, CLIENT_ID, 'tamper applies only once');
    console.log('ok tamper (re-signed with the provider key)');
  }

  // Tamper with an unknown key: kid not in the JWKS, signature unverifiable.
  {
    await hook('/__test/tamper', { sign_with_unknown_key: true });
    const t = await flow();
    const published = await jwks();
    assert.ok(!published.keys.some((k) => k.kid === t.header.kid), 'unknown kid is not published');
    assert.equal(verifyWithJwks(t.tokens.id_token, published), null);
    assert.equal(t.payload.sign_with_unknown_key, undefined);
    assert.equal(t.payload.aud, CLIENT_ID);
    console.log(`ok tamper with unknown key (kid ${t.header.kid})`);
  }

  // Rotation in the middle of a flow: /auth and the login page come from the
  // old provider instance, login + token from the new one (shared state).
  {
    const t = await flow({ between: () => hook('/__test/rotate') });
    const keys2 = await jwks();
    assert.equal(keys2.keys.length, 2);
    const kid2 = keys2.keys[0].kid;
    assert.notEqual(kid2, kid1);
    assert.equal(keys2.keys[1].kid, kid1, 'old key still published');
    assert.equal(t.header.kid, kid2, 'next token signed with the new key');
    assert.equal(verifyWithJwks(t.tokens.id_token, keys2), kid2);
    // The old token from before the rotation still verifies with the new JWKS.
    assert.equal(verifyWithJwks(tokens.id_token, keys2), kid1);
    // Tamper after rotation re-signs with the new key.
    await hook('/__test/tamper', { groups: ['x'] });
    const t2 = await flow();
    assert.equal(t2.header.kid, kid2);
    assert.deepEqual(t2.payload.groups, ['x']);
    assert.equal(verifyWithJwks(t2.tokens.id_token, keys2), kid2);
    console.log(`ok rotate (kid ${kid1} -> ${kid2}, mid-flow)`);
  }

  // Without prompt=login an existing session is reused (no form, no consent).
  {
    const browser = new Browser();
    const noPrompt = { extra: { prompt: undefined, max_age: undefined } };
    const page = await browser.follow(authorizationRequest(noPrompt).url);
    await browser.follow(await submitLoginForm(browser, page, LOGIN));
    const cb = await browser.follow(authorizationRequest(noPrompt).url);
    assert.ok(cb instanceof URL && cb.searchParams.get('code'), 'second authorization skips the form');
    console.log('ok session reuse without consent screen');
    // prompt=login in the same browser can switch to another user.
    const { payload: p } = await flow({ browser, login: { ...LOGIN, sub: 'u3', email: 'u3@example.com' } });
    assert.equal(p.sub, 'u3');
    assert.equal(p.email, 'u3@example.com');
    console.log('ok re-login as another user in the same browser');
  }
}

// ---------------------------------------------------------------------------
// Run: start the provider, read its one stdout line, run the checks.

const child = spawn(process.execPath, [fileURLToPath(new URL('./provider.mjs', import.meta.url))], {
  env: {
    ...process.env,
    OIDC_CLIENT_ID: CLIENT_ID,
    OIDC_CLIENT_SECRET: CLIENT_SECRET,
    // Two redirect URIs, to exercise the comma-separated form.
    OIDC_REDIRECT_URI: `${REDIRECT_URI},http://127.0.0.1:9/other-callback`,
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let providerLog = '';
child.stderr.on('data', (d) => {
  providerLog += d;
  if (process.env.VERBOSE) process.stderr.write(d);
});

issuer = await new Promise((resolve, reject) => {
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
    const m = out.match(/^issuer (\S+)\n/);
    if (m) resolve(m[1]);
  });
  child.on('exit', (code) => reject(new Error(`provider exited (${code}) before printing its issuer:\n${providerLog}`)));
  setTimeout(() => reject(new Error('no issuer line within 10s')), 10_000).unref();
});

let failed = false;
try {
  await main();
  console.log('selfcheck: all checks passed');
} catch (err) {
  failed = true;
  console.error('selfcheck FAILED:', err);
  if (!process.env.VERBOSE) console.error(`--- provider log ---\n${providerLog}`);
} finally {
  child.kill();
  await once(child, 'exit');
}
process.exit(failed ? 1 : 0);
