// The OpenID Connect identity provider that actas's OIDC tests run against.
//
// A thin harness around the certified `oidc-provider` package: one client
// (actas) plus a second client `other-app`, a plain HTML login form instead of
// a real user database, no consent screen, and a few `/__test/` hooks that let
// tests make the provider misbehave (tampered ID tokens, key rotation).
//
// Start:   OIDC_CLIENT_ID=actas OIDC_CLIENT_SECRET=s3cret \
//          OIDC_REDIRECT_URI=http://127.0.0.1:8080/oidc/callback node provider.mjs
// Output:  exactly one stdout line once listening: `issuer http://127.0.0.1:PORT`.
//          Everything else (request log, oidc-provider notices) goes to stderr.
//
// Environment:
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET  the relying party (actas); required
//   OIDC_REDIRECT_URI                   its redirect URI(s), comma-separated (or set them later
//                                       with POST /__test/redirect_uris)
//   OIDC_TOKEN_ENDPOINT_AUTH_METHOD     optional, default client_secret_basic
//                                       (client_secret_post is the other sensible value)
//
// Routes served besides oidc-provider's own (/auth, /token, /jwks, /me,
// /.well-known/openid-configuration, ...):
//   GET  /interaction/:uid          login form (fields sub, email, name, groups, acr, age; button #sign-in)
//   POST /interaction/:uid/login    form submit (application/x-www-form-urlencoded)
//   POST /__test/tamper             JSON claims to overwrite in the NEXT token response's id_token
//   POST /__test/rotate             switch to a new signing key (new kid; old key stays in the JWKS)
//   POST /__test/redirect_uris      JSON array: the clients' redirect URIs from now on

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';
// The package has no "exports" map, so this internal module is importable. It
// is the same in-memory adapter oidc-provider uses by default; we call its
// factory ourselves so that several Provider instances share ONE store (see
// the note on key rotation below). The package version is pinned exactly.
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';

// stdout carries only the `issuer ...` line (tests parse it). oidc-provider
// prints its development notices with console.info (stdout), so send every
// console method to stderr.
console.log = console.info = console.warn;

// ---------------------------------------------------------------------------
// Configuration from the environment.

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`provider.mjs: environment variable ${name} is required`);
    process.exit(2);
  }
  return value;
}

const CLIENT_ID = requiredEnv('OIDC_CLIENT_ID');
const CLIENT_SECRET = requiredEnv('OIDC_CLIENT_SECRET');
// Optional: a test that starts the provider before actas (whose port it learns only
// once actas listens) sets them later with POST /__test/redirect_uris.
let REDIRECT_URIS = (process.env.OIDC_REDIRECT_URI || 'http://127.0.0.1:9/not-set-yet').split(',').map((s) => s.trim()).filter(Boolean);
const TOKEN_AUTH_METHOD = process.env.OIDC_TOKEN_ENDPOINT_AUTH_METHOD || 'client_secret_basic';

// The second client, so tests can get an ID token issued for another audience.
const OTHER_CLIENT_ID = 'other-app';
const OTHER_CLIENT_SECRET = 'other-secret';

const ACR_VALUES = ['urn:actas:pwd', 'urn:actas:mfa'];
const TOKEN_PATH = '/token';

// ---------------------------------------------------------------------------
// Keys. RS256 signing keys are generated fresh at every start.

function newSigningKey(prefix) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `${prefix}-${crypto.randomBytes(6).toString('hex')}`;
  // alg and use are set on every key so that all keys score the same in
  // oidc-provider's key selection, which then picks the FIRST key in the list.
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

// Newest first: the provider signs with keys[0] and publishes all of them.
const signingKeys = [newSigningKey('k1')];
// Never published: used by the tamper hook's `sign_with_unknown_key`.
const unknownKey = newSigningKey('unknown');

// Cookie signing keys (random per start; shared by all provider instances).
const COOKIE_KEYS = [crypto.randomBytes(32).toString('base64url')];

// One in-memory store for every provider instance (see rotation below).
const adapter = createMemoryAdapter();

// ---------------------------------------------------------------------------
// Accounts: filled in by the login form, sub -> { email, name, groups }.

const accounts = new Map();

async function findAccount(ctx, sub) {
  const account = accounts.get(sub);
  if (!account) return undefined;
  return {
    accountId: sub,
    // oidc-provider filters this down to what the scopes / claims ask for.
    async claims() {
      return {
        sub,
        email: account.email,
        email_verified: true,
        name: account.name,
        groups: account.groups,
      };
    },
  };
}

// No consent screen: whenever the authorization endpoint looks for the grant
// of this client/account, hand it one that already covers everything asked for
// (the requested OIDC scopes and claims). The consent prompt then has nothing
// missing and the flow goes straight back to the client after login.
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const { Grant } = oidc.provider;
  const clientId = oidc.client.clientId;
  const accountId = oidc.session.accountId;

  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(clientId);
  let grant = grantId ? await Grant.find(grantId) : undefined;
  if (!grant || grant.accountId !== accountId || grant.clientId !== clientId) {
    grant = new Grant({ clientId, accountId });
  }
  grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
  const claims = [...oidc.requestParamClaims];
  if (claims.length) grant.addOIDCClaims(claims);
  await grant.save();
  return grant;
}

function clientMetadata(clientId, clientSecret) {
  return {
    client_id: clientId,
    client_secret: clientSecret,
    // A plain `web` client: oidc-provider accepts http:// (and 127.0.0.1)
    // redirect URIs for web clients as long as the implicit flow is not used.
    redirect_uris: REDIRECT_URIS,
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: TOKEN_AUTH_METHOD,
    id_token_signed_response_alg: 'RS256',
    // auth_time in every ID token, not only when max_age / prompt=login is
    // used. (Tests for a missing auth_time can remove it with /__test/tamper.)
    require_auth_time: true,
  };
}

function configuration(keys) {
  return {
    adapter,
    clients: [
      clientMetadata(CLIENT_ID, CLIENT_SECRET),
      clientMetadata(OTHER_CLIENT_ID, OTHER_CLIENT_SECRET),
    ],
    jwks: { keys },
    cookies: { keys: COOKIE_KEYS },
    findAccount,
    loadExistingGrant,

    // Authorization code flow only, with PKCE (S256 is the only method
    // oidc-provider implements) required for every client.
    responseTypes: ['code'],
    pkce: { required: () => true },

    // Scopes: openid plus one per claim group below (email, profile, groups).
    scopes: ['openid'],
    claims: {
      // By default oidc-provider puts acr in the ID token only when acr_values
      // (or the claims parameter) asks for it, and has no amr at all. Listing
      // both under `openid` makes every ID token carry the acr/amr the login
      // recorded, like most real IdPs do. (sid, iss, auth_time: defaults.)
      openid: ['sub', 'acr', 'amr'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    acrValues: ACR_VALUES,
    // Put scope-derived claims (email, groups, ...) in the ID token itself even
    // though an access token is issued too.
    conformIdTokenClaims: false,

    routes: { token: TOKEN_PATH },
    features: {
      devInteractions: { enabled: false },
    },
    interactions: {
      url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },

    // Short lifetimes (seconds); tests are short.
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },

    // Errors shown to the browser as plain text (and logged), not a styled page.
    async renderError(ctx, out, error) {
      console.error('provider error page:', out, error?.message);
      ctx.type = 'text/plain';
      ctx.body = `oidc-provider error\n${Object.entries(out).map(([k, v]) => `${k}: ${v}`).join('\n')}\n`;
    },
  };
}

// ---------------------------------------------------------------------------
// Tamper hook state: claims to overwrite in the next token response.

let pendingTamper = null;

function b64json(value) {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function signRs256(header, payload, jwk) {
  const input = `${b64json(header)}.${b64json(payload)}`;
  const key = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  const signature = crypto.sign('sha256', Buffer.from(input), key).toString('base64url');
  return `${input}.${signature}`;
}

function tamperIdToken(idToken, { claims, signWithUnknownKey }) {
  const [h, p] = idToken.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const payload = JSON.parse(Buffer.from(p, 'base64url'));
  for (const [name, value] of Object.entries(claims)) {
    if (value === null) delete payload[name];
    else payload[name] = value;
  }
  const key = signWithUnknownKey ? unknownKey : signingKeys[0];
  return signRs256({ ...header, alg: 'RS256', kid: key.kid }, payload, key);
}

// ---------------------------------------------------------------------------
// Provider instances.
//
// oidc-provider fixes its JWKS at construction, so key rotation builds a new
// Provider with the new key first ([new, ...older]) and switches the HTTP
// server over to it. Everything stateful must then be shared between the
// instances: cookie keys (above), accounts (above), and the adapter.
//
// Memory adapter sharing, checked in node_modules/oidc-provider/lib/adapters/
// memory_adapter.js and lib/helpers/initialize_adapter.js (9.13.3): it is NOT
// shared by default. With no `adapter` configured, each Provider calls
// createMemoryAdapter(), which creates its own LRU store, so sessions,
// interactions, grants and codes of instance A would be invisible to B. (Only
// the bare MemoryAdapter class uses a module-level store, and passing that
// class is itself replaced by createMemoryAdapter().) Hence one
// createMemoryAdapter() factory is passed to every instance.

let issuer = null;
let current = null; // { provider, callback }

function makeProvider() {
  const provider = new Provider(issuer, configuration([...signingKeys]));

  // Apply a pending tamper to the token endpoint's response, once.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === TOKEN_PATH && pendingTamper && ctx.body && typeof ctx.body.id_token === 'string') {
      ctx.body.id_token = tamperIdToken(ctx.body.id_token, pendingTamper);
      console.error('tamper applied to id_token:', JSON.stringify(pendingTamper));
      pendingTamper = null;
    }
  });

  for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
    provider.on(event, (ctx, err) => console.error(`${event}: ${err?.message}${err?.error_description ? ` (${err.error_description})` : ''}`));
  }

  return { provider, callback: provider.callback() };
}

// ---------------------------------------------------------------------------
// Interaction pages.

function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function loginPage(details, error) {
  const { uid, params } = details;
  const field = (id, label, attrs = '') => `
    <p><label for="${id}">${label}</label><br>
    <input id="${id}" name="${id}" ${attrs}></p>`;
  return `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Test identity provider</title></head>
<body>
  <h1>Test identity provider</h1>
  <p>Client <code id="client-id">${escapeHtml(params.client_id)}</code>
     asks for <code id="scope">${escapeHtml(params.scope)}</code>.</p>
  ${error ? `<p id="error" style="color:#b00">${escapeHtml(error)}</p>` : ''}
  <form method="post" action="/interaction/${escapeHtml(uid)}/login">
    ${field('sub', 'Subject (sub)', `required value="${escapeHtml(params.login_hint)}"`)}
    ${field('email', 'Email', 'type="email"')}
    ${field('name', 'Name (optional)')}
    ${field('groups', 'Groups (comma-separated)')}
    ${field('acr', 'ACR (optional, e.g. urn:actas:pwd or urn:actas:mfa)')}
    ${field('age', 'Authenticated this many seconds ago', 'type="number" min="0" value="0"')}
    <button id="sign-in" type="submit">Sign in</button>
  </form>
</body>
</html>`;
}

// Consent (or any prompt other than login): grant exactly what is missing.
async function finishConsent(provider, req, res, details) {
  const { prompt: { details: missing }, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(resource, scopes.join(' '));
  }
  const savedGrantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId: savedGrantId } }, { mergeWithLastSubmission: true });
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res, status, body = '', type = 'text/plain; charset=utf-8') {
  res.statusCode = status;
  if (body) res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

// GET /interaction/:uid
async function showInteraction(req, res, uid) {
  const { provider } = current;
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'interaction uid does not match the interaction cookie\n');
  if (details.prompt.name === 'login') {
    return send(res, 200, loginPage(details), 'text/html; charset=utf-8');
  }
  return finishConsent(provider, req, res, details);
}

// POST /interaction/:uid/login
async function submitLogin(req, res, uid) {
  const { provider } = current;
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'interaction uid does not match the interaction cookie\n');
  if (details.prompt.name !== 'login') return finishConsent(provider, req, res, details);

  const form = new URLSearchParams(await readBody(req));
  const sub = (form.get('sub') || '').trim();
  if (!sub) return send(res, 400, loginPage(details, 'sub is required'), 'text/html; charset=utf-8');
  const email = (form.get('email') || '').trim() || undefined;
  const name = (form.get('name') || '').trim() || email || sub;
  const groups = (form.get('groups') || '').split(',').map((g) => g.trim()).filter(Boolean);
  const acr = (form.get('acr') || '').trim() || undefined;
  const age = Math.max(0, Number.parseInt(form.get('age') || '0', 10) || 0);

  accounts.set(sub, { email, name, groups });
  await provider.interactionFinished(req, res, {
    login: {
      accountId: sub,
      ts: Math.floor(Date.now() / 1000) - age,
      acr,
      amr: acr === 'urn:actas:mfa' ? ['pwd', 'otp'] : ['pwd'],
    },
  }, { mergeWithLastSubmission: false });
}

// POST /__test/tamper
async function setTamper(req, res) {
  let body;
  try {
    body = JSON.parse(await readBody(req));
  } catch {
    return send(res, 400, 'body must be JSON\n');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return send(res, 400, 'body must be a JSON object\n');
  const { sign_with_unknown_key: signWithUnknownKey = false, ...claims } = body;
  pendingTamper = { claims, signWithUnknownKey: signWithUnknownKey === true };
  send(res, 204);
}

// POST /__test/rotate
async function setRedirectUris(req, res) {
  let body;
  try {
    body = JSON.parse(await readBody(req));
  } catch {
    return send(res, 400, 'body must be JSON\n');
  }
  if (!Array.isArray(body) || !body.length || !body.every((u) => typeof u === 'string')) {
    return send(res, 400, 'body must be a non-empty JSON array of URLs\n');
  }
  REDIRECT_URIS = body;
  // Clients are fixed when a Provider is made: make a new one (same keys, same store).
  current = makeProvider();
  send(res, 204);
}

function rotate(req, res) {
  signingKeys.unshift(newSigningKey(`k${signingKeys.length + 1}`));
  current = makeProvider();
  console.error(`rotated: signing with ${signingKeys[0].kid}; JWKS has ${signingKeys.map((k) => k.kid).join(', ')}`);
  send(res, 204);
}

// ---------------------------------------------------------------------------
// HTTP server: our routes first, everything else to the current provider.

async function handle(req, res) {
  if (!current) return send(res, 503, 'starting\n');
  const { pathname } = new URL(req.url, 'http://localhost');
  let m;
  if (req.method === 'GET' && (m = pathname.match(/^\/interaction\/([^/]+)$/))) {
    return showInteraction(req, res, m[1]);
  }
  if (req.method === 'POST' && (m = pathname.match(/^\/interaction\/([^/]+)\/login$/))) {
    return submitLogin(req, res, m[1]);
  }
  if (req.method === 'POST' && pathname === '/__test/tamper') return setTamper(req, res);
  if (req.method === 'POST' && pathname === '/__test/rotate') return rotate(req, res);
  if (req.method === 'POST' && pathname === '/__test/redirect_uris') return setRedirectUris(req, res);
  return current.callback(req, res);
}

const server = http.createServer((req, res) => {
  const started = Date.now();
  res.on('finish', () => {
    console.error(`${req.method} ${req.url} -> ${res.statusCode} ${res.getHeader('location') ?? ''} (${Date.now() - started}ms)`);
  });
  handle(req, res).catch((err) => {
    // interactionDetails throws SessionNotFound for missing/expired cookies.
    console.error(`error handling ${req.method} ${req.url}:`, err);
    if (!res.headersSent) send(res, err.statusCode || 500, `${err.name}: ${err.message}\n`);
    else res.end();
  });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  current = makeProvider();
  process.stdout.write(`issuer ${issuer}\n`);
});

// Exit when the parent process goes away (e.g. a test run killed with
// SIGKILL), so no orphaned provider keeps running. (process.ppid is fixed at
// start in Node 20, so probe the parent with signal 0 instead.)
const parentPid = process.ppid;
if (parentPid > 1) {
  setInterval(() => {
    try {
      process.kill(parentPid, 0);
    } catch (err) {
      if (err.code === 'ESRCH') process.exit(0);
    }
  }, 1000).unref();
}
