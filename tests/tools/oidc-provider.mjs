// oidc-provider.mjs: a real OpenID Connect provider process for paydesk's SSO
// tests, built on the npm package oauth2-mock-server (pinned in package.json;
// install with `npm ci --prefix tests/tools`; needs Node >= 20.19).
//
// START
//
//   node tests/tools/oidc-provider.mjs --port P --control-port C [--issuer URL]
//                                      [--exit-with-stdin]
//
//   --port P           OIDC provider HTTP port on 127.0.0.1 (0 = pick a free one).
//   --control-port C   control API HTTP port on 127.0.0.1 (0 = pick a free one).
//   --issuer URL       issuer identifier; default `http://127.0.0.1:P` (no
//                      trailing slash). It is used verbatim as `issuer` in the
//                      discovery document, as the base of every endpoint URL in
//                      it, and as the `iss` claim. openidconnect compares it as
//                      a string, so configure paydesk with exactly this value.
//                      Its path must be empty or "/": the endpoints are always
//                      served at the root of port P (the library builds the
//                      discovery URLs as issuer + "/token" and so on), so use
//                      --issuer only to change the host/port clients see.
//   --exit-with-stdin  exit when stdin reaches end-of-file, so that the process
//                      dies with a test harness that spawned it with a piped
//                      stdin. Do not use it with stdin set to /dev/null.
//
// Once both servers listen, exactly one line is written to stdout:
//
//   READY <P> <C>
//
// with the actual ports. Nothing else is ever written to stdout; diagnostics go
// to stderr. If either port cannot be bound, the process prints an error to
// stderr and exits with status 1 without printing READY. SIGTERM and SIGINT
// close both servers and exit with status 0.
//
// PROVIDER ENDPOINTS (served by oauth2-mock-server, relative to the issuer)
//
//   GET  /.well-known/openid-configuration   discovery
//   GET  /jwks                               one RS256 key, generated at start
//   GET  /authorize                          no login page: answers 302 to
//                                            redirect_uri?code=...&state=... at once
//   POST /token                              authorization_code (and refresh_token,
//                                            password, client_credentials) grants
//   GET  /userinfo                           answers the scenario's claims
//   POST /revoke, GET /endsession, POST /introspect   (mock defaults)
//
// What the mock checks, and does not (oauth2-mock-server 8.2.3):
//   * client authentication: client_secret_basic (HTTP Basic) and
//     client_secret_post (client_id/client_secret in the form) are both
//     accepted, but the secret is NEVER checked; the client id is taken from
//     Basic if present, else from the form's client_id.
//   * PKCE: if the token request carries code_verifier, it IS checked against
//     the code_challenge (S256 or plain) the /authorize request carried for
//     that code; a mismatch, a malformed verifier, or a verifier for a code
//     without a challenge gives 400 invalid_request. A token request WITHOUT
//     code_verifier is not refused even if /authorize carried a challenge.
//   * the authorization code itself is not validated (any string works), nor
//     is redirect_uri or client_id at /authorize. A code is not single-use,
//     except that its nonce and PKCE challenge are consumed by the first
//     exchange.
//   * the discovery document advertises token_endpoint_auth_methods_supported
//     ["none"] even though Basic and post work; it is the library's document.
//
// CONTROL API (127.0.0.1:C, JSON in and out)
//
//   GET  /health     200 {"ok":true}
//   GET  /scenario   200 with the scenario in effect
//   POST /scenario   body: a JSON object. REPLACES the scenario (fields left out
//                    take their defaults) for every token issued from now on,
//                    until the next POST /scenario or /reset. Answers 200 with
//                    the scenario in effect, or 400 on an unknown field or a
//                    field of the wrong type.
//   POST /reset      back to the defaults; 200 with the scenario in effect.
//
// Scenario fields (all optional). For the claim fields, JSON null means "leave
// the claim out of the ID token".
//
//   sub              string, default "user-1"
//   email            string, default "ada@example.gov"
//   email_verified   boolean, default true
//   name             string, default "Ada Lovelace"
//   amr              array of strings, default: no amr claim
//   aud              string or array of strings; default: the client id the
//                    token request authenticated with
//   nonce            string; default: the nonce the /authorize request that
//                    produced the code carried (no claim if it carried none)
//   iss              string; default: the issuer
//   exp_offset_secs  number; exp = now + this, default 3600. When it is > 0,
//                    iat = now; otherwise (an already expired token)
//                    iat = exp - 3600, so that iat <= now always holds.
//   bad_signature    boolean, default false. true: the ID token is signed
//                    with another RS256 key that is not in /jwks, under the
//                    kid of the published key, so only the signature check
//                    can catch it.
//   alg_none         boolean, default false. true: the ID token is unsigned,
//                    header {"alg":"none","typ":"JWT"} and an empty signature
//                    part ("<header>.<payload>."). Wins over bad_signature.
//
// The ID token carries iss, sub, aud, exp, iat, nbf (= iat), nonce, email,
// email_verified, name, and amr when set. The scenario's sub/email/
// email_verified/name/amr also shape /userinfo, and sub the access token.

import { createServer } from 'node:http';
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { parseArgs } from 'node:util';
import { OAuth2Server } from 'oauth2-mock-server';

// ---------------------------------------------------------------------------
// Command line

function usage(message) {
  process.stderr.write(
    `oidc-provider: ${message}\n` +
      'usage: node oidc-provider.mjs --port P --control-port C [--issuer URL] [--exit-with-stdin]\n',
  );
  process.exit(2);
}

function parsePort(value, flag) {
  if (value === undefined) usage(`${flag} is required`);
  if (!/^\d+$/.test(value) || Number(value) > 65535) usage(`${flag} must be a port number, got "${value}"`);
  return Number(value);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string' },
      'control-port': { type: 'string' },
      issuer: { type: 'string' },
      'exit-with-stdin': { type: 'boolean', default: false },
    },
    strict: true,
  }));
} catch (err) {
  usage(err.message);
}
const port = parsePort(args.port, '--port');
const controlPort = parsePort(args['control-port'], '--control-port');
const HOST = '127.0.0.1';
if (args.issuer !== undefined) {
  let url;
  try {
    url = new URL(args.issuer);
  } catch {
    usage(`--issuer must be a URL, got "${args.issuer}"`);
  }
  if (url.pathname !== '/' || url.search || url.hash) usage('--issuer must have no path, query or fragment');
}

function log(message) {
  process.stderr.write(`oidc-provider: ${message}\n`);
}

// ---------------------------------------------------------------------------
// Scenario: what the next ID tokens look like

const DEFAULTS = Object.freeze({
  sub: 'user-1',
  email: 'ada@example.gov',
  email_verified: true,
  name: 'Ada Lovelace',
  exp_offset_secs: 3600,
  bad_signature: false,
  alg_none: false,
});

// One checker per accepted field; each returns true when the value is valid.
const isString = (v) => typeof v === 'string';
const isStringOrNull = (v) => v === null || isString(v);
const isStringArray = (v) => Array.isArray(v) && v.every(isString);
const FIELDS = {
  sub: isStringOrNull,
  email: isStringOrNull,
  email_verified: (v) => v === null || typeof v === 'boolean',
  name: isStringOrNull,
  amr: (v) => v === null || isStringArray(v),
  aud: (v) => v === null || isString(v) || isStringArray(v),
  nonce: isStringOrNull,
  iss: isStringOrNull,
  exp_offset_secs: (v) => typeof v === 'number' && Number.isFinite(v),
  bad_signature: (v) => typeof v === 'boolean',
  alg_none: (v) => typeof v === 'boolean',
};

let scenario = { ...DEFAULTS };

// Validates a POST /scenario body and returns the new scenario (defaults plus
// the given fields), or throws an Error whose message goes back to the caller.
function buildScenario(body) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new Error('the body must be a JSON object');
  }
  for (const [field, value] of Object.entries(body)) {
    const check = FIELDS[field];
    if (check === undefined) throw new Error(`unknown scenario field "${field}"`);
    if (!check(value)) throw new Error(`scenario field "${field}" has the wrong type`);
  }
  return { ...DEFAULTS, ...body };
}

// ---------------------------------------------------------------------------
// JWT helpers (node crypto; the token endpoint hook is synchronous, so no jose)

const b64url = (value) => Buffer.from(value).toString('base64url');

function decodePayload(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

// Compact JWS with RS256 (RSASSA-PKCS1-v1_5 over SHA-256, node's default
// padding for RSA keys).
function signRs256(header, payload, privateKey) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
}

function unsignedJwt(payload) {
  return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}.`;
}

// The client id of a token request, the way the library finds it (HTTP Basic
// first, then the form's client_id), except that the Basic user name is
// form-urlencoding-decoded as RFC 6749 section 2.3.1 says (openidconnect encodes
// it; the library's basic-auth parser does not decode it).
function clientIdOf(req) {
  const header = req.headers.authorization;
  if (typeof header === 'string' && /^basic /i.test(header)) {
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0) {
      const raw = decoded.slice(0, colon);
      try {
        return decodeURIComponent(raw.replace(/\+/g, ' '));
      } catch {
        return raw;
      }
    }
  }
  const bodyId = req.body?.client_id;
  return typeof bodyId === 'string' ? bodyId : undefined;
}

// ---------------------------------------------------------------------------
// The provider

const server = new OAuth2Server();

// The published signing key (private JWK with kid and alg). Keep it: the ID
// token is re-signed with it below.
const publishedJwk = await server.issuer.keys.generate('RS256');
const publishedKey = createPrivateKey({ key: publishedJwk, format: 'jwk' });

// The key bad_signature uses: never added to the key store, so never in /jwks.
const { privateKey: rogueKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

// How oauth2-mock-server 8.2.3 makes the token response (dist source):
//   * /authorize stores the nonce query parameter keyed by the code it issues.
//   * /token builds the access token, then the ID token, both with the
//     issuer's current key; the ID token gets sub "johndoe", aud = client id
//     and, when the code is known, the stored nonce (consumed). Every build
//     emits 'beforeTokenSigning' (token, req) just before signing, with
//     token.header/token.payload mutable.
//   * then it emits 'beforeResponse' (response, req) with response.body (the
//     JSON the client gets: access_token, id_token, ...) mutable. Listeners run
//     synchronously and are not awaited.
// 'beforeTokenSigning' cannot tell the access token from the ID token except
// by the library's internal order, so the ID token is rebuilt in
// 'beforeResponse', where response.body.id_token is unambiguous: its payload
// supplies the nonce the library wired from /authorize, and the claims come
// from the scenario.

// The access token (and the library's own ID token, replaced below) gets the
// scenario's subject.
server.service.on('beforeTokenSigning', (token) => {
  if (typeof scenario.sub === 'string') token.payload.sub = scenario.sub;
});

server.service.on('beforeResponse', (response, req) => {
  const body = response.body;
  if (response.statusCode !== 200 || typeof body?.id_token !== 'string') return;

  const s = scenario;
  const original = decodePayload(body.id_token);
  const now = Math.floor(Date.now() / 1000);
  const exp = now + Math.trunc(s.exp_offset_secs);
  const iat = s.exp_offset_secs > 0 ? now : exp - 3600;

  // 'in' distinguishes "field absent" (use the default) from null (omit).
  const pick = (field, fallback) => (field in s ? s[field] : fallback);
  const claims = {
    iss: pick('iss', server.issuer.url),
    sub: s.sub,
    aud: pick('aud', clientIdOf(req)),
    exp,
    iat,
    nbf: iat,
    nonce: pick('nonce', original.nonce),
    email: s.email,
    email_verified: s.email_verified,
    name: s.name,
    amr: s.amr,
  };
  // JSON.stringify drops undefined members; drop nulls too.
  for (const [k, v] of Object.entries(claims)) if (v === null || v === undefined) delete claims[k];

  const header = { alg: 'RS256', typ: 'JWT', kid: publishedJwk.kid };
  let kind;
  if (s.alg_none) {
    body.id_token = unsignedJwt(claims);
    kind = 'unsigned (alg none)';
  } else if (s.bad_signature) {
    body.id_token = signRs256(header, claims, rogueKey);
    kind = 'signed with the unpublished key';
  } else {
    body.id_token = signRs256(header, claims, publishedKey);
    kind = 'signed';
  }
  log(`token: ${req.body?.grant_type} for client ${claims.aud ?? '(none)'}, ID token ${kind}, sub ${claims.sub ?? '(none)'}`);
});

// /userinfo answers the scenario's claims instead of the library's
// {"sub":"johndoe"} (it does not look at the bearer token).
server.service.on('beforeUserinfo', (response) => {
  const s = scenario;
  const info = { sub: s.sub, email: s.email, email_verified: s.email_verified, name: s.name, amr: s.amr };
  for (const [k, v] of Object.entries(info)) if (v === null || v === undefined) delete info[k];
  response.body = info;
});

// An explicit issuer is set before start (start() keeps a preset one). Without
// it the library would default to http://localhost:P even when bound to
// 127.0.0.1, so the default is set after start, once the real port is known
// (it matters for --port 0); no request can arrive before READY anyway.
if (args.issuer !== undefined) server.issuer.url = args.issuer;

// ---------------------------------------------------------------------------
// The control API

function sendJson(res, status, value) {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

const control = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://control').pathname;
  try {
    if (req.method === 'GET' && path === '/health') return sendJson(res, 200, { ok: true });
    if (req.method === 'GET' && path === '/scenario') return sendJson(res, 200, scenario);
    if (req.method === 'POST' && path === '/reset') {
      await readBody(req);
      scenario = { ...DEFAULTS };
      log('scenario reset');
      return sendJson(res, 200, scenario);
    }
    if (req.method === 'POST' && path === '/scenario') {
      const text = await readBody(req);
      let parsed;
      try {
        parsed = text.trim() === '' ? {} : JSON.parse(text);
      } catch {
        return sendJson(res, 400, { error: 'the body is not valid JSON' });
      }
      try {
        scenario = buildScenario(parsed);
      } catch (err) {
        return sendJson(res, 400, { error: err.message });
      }
      log(`scenario ${JSON.stringify(parsed)}`);
      return sendJson(res, 200, scenario);
    }
    return sendJson(res, 404, { error: `no ${req.method} ${path}` });
  } catch (err) {
    log(`control error: ${err.stack ?? err}`);
    if (!res.headersSent) sendJson(res, 500, { error: String(err) });
    else res.destroy();
  }
});

function listenControl() {
  return new Promise((resolve, reject) => {
    control.once('error', reject);
    control.listen(controlPort, HOST, () => {
      control.off('error', reject);
      resolve();
    });
  });
}

// ---------------------------------------------------------------------------
// Start, READY, stop

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: stopping`);
  // Open keep-alive connections could hold close() up; do not wait for them
  // for long.
  setTimeout(() => process.exit(0), 2000).unref();
  await Promise.allSettled([
    server.listening ? server.stop() : Promise.resolve(),
    control.listening ? new Promise((resolve) => control.close(resolve)) : Promise.resolve(),
  ]);
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

try {
  await server.start(port, HOST);
  await listenControl();
} catch (err) {
  log(`cannot start: ${err.message}`);
  process.exit(1);
}
const actualPort = server.address().port;
if (args.issuer === undefined) server.issuer.url = `http://${HOST}:${actualPort}`;
log(`issuer ${server.issuer.url}, signing key kid ${publishedJwk.kid}`);

if (args['exit-with-stdin']) {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.resume();
}

process.stdout.write(`READY ${actualPort} ${control.address().port}\n`);
